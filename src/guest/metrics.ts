// CollectMetrics on the guest: CPU use since the previous collection (or over a short sample the first time),
// memory from node:os, the root file system from statfs, uptime.
import { statfs } from "node:fs/promises";
import { cpus, freemem, totalmem, uptime } from "node:os";

export interface GuestMetrics {
  cpuPercent: number;
  memoryUsedBytes: number;
  memoryTotalBytes: number;
  diskUsedBytes: number;
  diskTotalBytes: number;
  uptimeSeconds: number;
  time: Date;
}

interface CpuTimes {
  idle: number;
  total: number;
}

function cpuTimes(): CpuTimes {
  let idle = 0;
  let total = 0;
  for (const c of cpus()) {
    idle += c.times.idle;
    total += c.times.user + c.times.nice + c.times.sys + c.times.idle + c.times.irq;
  }
  return { idle, total };
}

const FIRST_SAMPLE_MS = 100;

export function createMetricsCollector(diskPath = "/"): () => Promise<GuestMetrics> {
  let previous: CpuTimes | undefined;
  return async () => {
    if (!previous) {
      previous = cpuTimes();
      await new Promise((r) => setTimeout(r, FIRST_SAMPLE_MS));
    }
    const current = cpuTimes();
    const total = current.total - previous.total;
    const cpuPercent = total > 0 ? Math.min(100, Math.max(0, (1 - (current.idle - previous.idle) / total) * 100)) : 0;
    previous = current;
    const fs = await statfs(diskPath);
    const diskTotal = fs.blocks * fs.bsize;
    return {
      cpuPercent,
      memoryUsedBytes: totalmem() - freemem(),
      memoryTotalBytes: totalmem(),
      diskUsedBytes: diskTotal - fs.bfree * fs.bsize,
      diskTotalBytes: diskTotal,
      uptimeSeconds: uptime(),
      time: new Date(),
    };
  };
}
