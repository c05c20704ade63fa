// Server metric samples: the metric names, the sample shape, and ingestSamples — the one way samples enter the
// analytics database (agent pings and drivers call it), as batched multi-row inserts.
import { InvalidArgumentError, type FieldViolation } from "../errors.js";
import type { Sql } from "../db/sql.js";

/** Metric names as stored in roll-ups, each the name of its column in server_metric_samples. */
export const METRICS = ["cpu_percent", "memory_used_bytes", "memory_total_bytes", "disk_used_bytes", "disk_total_bytes", "network_in_bytes", "network_out_bytes"] as const;
export type MetricName = (typeof METRICS)[number];

/** One observation of a server. Absent metrics are stored as NULL and left out of aggregates. */
export interface MetricSample {
  serverId: string;
  time: Date;
  cpuPercent: number;
  memoryUsedBytes: number;
  memoryTotalBytes?: number | null;
  diskUsedBytes?: number | null;
  diskTotalBytes?: number | null;
  /** Bytes received since the previous sample. */
  networkInBytes?: number | null;
  /** Bytes sent since the previous sample. */
  networkOutBytes?: number | null;
}

/** Rows per INSERT: 9 values a row keeps a statement well under the driver's and server's limits. */
const BATCH_ROWS = 2_000;
const COLUMNS = 9;

const statements = new Map<number, TemplateStringsArray>();

/** A sample sent twice (a retried ping) rewrites its row: ingestion is idempotent. */
const UPSERT = ` ON DUPLICATE KEY UPDATE cpu_percent = VALUES(cpu_percent), memory_used_bytes = VALUES(memory_used_bytes),
  memory_total_bytes = VALUES(memory_total_bytes), disk_used_bytes = VALUES(disk_used_bytes), disk_total_bytes = VALUES(disk_total_bytes),
  network_in_bytes = VALUES(network_in_bytes), network_out_bytes = VALUES(network_out_bytes)`;

/**
 * The INSERT of `rows` samples as template strings around 9 × rows bound values — one statement text per batch size,
 * built once: ingestion is the hot path of analytics (a fleet's every sample), and a fragment per row costs more.
 */
function insertStatement(rows: number): TemplateStringsArray {
  let strings = statements.get(rows);
  if (!strings) {
    const parts: string[] = [
      "INSERT INTO server_metric_samples (server_id, time, cpu_percent, memory_used_bytes, memory_total_bytes, disk_used_bytes, disk_total_bytes, network_in_bytes, network_out_bytes) VALUES (",
    ];
    for (let r = 0; r < rows; r++) {
      for (let c = 1; c < COLUMNS; c++) parts.push(", ");
      parts.push(r === rows - 1 ? `)${UPSERT}` : "), (");
    }
    strings = Object.assign(parts, { raw: parts }) as unknown as TemplateStringsArray;
    statements.set(rows, strings);
  }
  return strings;
}

const count = (v: number | null | undefined): number | null => (v === undefined || v === null ? null : Math.round(v));

function check(s: MetricSample, i: number, out: FieldViolation[]): void {
  const at = `samples[${i}]`;
  if (typeof s.serverId !== "string" || s.serverId.length === 0 || s.serverId.length > 64) out.push({ field: `${at}.server_id`, description: "must be 1-64 characters" });
  if (!(s.time instanceof Date) || Number.isNaN(s.time.getTime())) out.push({ field: `${at}.time`, description: "must be a valid time" });
  if (!Number.isFinite(s.cpuPercent) || s.cpuPercent < 0) out.push({ field: `${at}.cpu_percent`, description: "must be a finite number, 0 or more" });
  const counters: [string, number | null | undefined][] = [
    ["memory_used_bytes", s.memoryUsedBytes],
    ["memory_total_bytes", s.memoryTotalBytes],
    ["disk_used_bytes", s.diskUsedBytes],
    ["disk_total_bytes", s.diskTotalBytes],
    ["network_in_bytes", s.networkInBytes],
    ["network_out_bytes", s.networkOutBytes],
  ];
  for (const [name, v] of counters) {
    if (v === undefined || v === null) {
      if (name === "memory_used_bytes") out.push({ field: `${at}.${name}`, description: "is required" });
    } else if (!Number.isFinite(v) || v < 0 || v > Number.MAX_SAFE_INTEGER) out.push({ field: `${at}.${name}`, description: "must be a whole number of bytes, 0 or more" });
  }
}

/**
 * Stores `samples` in batches of multi-row INSERTs (each batch commits on its own). INVALID_ARGUMENT naming every bad
 * sample before anything is written; UNAVAILABLE (ANALYTICS_UNAVAILABLE) when the analytics database is down — callers
 * on a provisioning path should log and drop the samples rather than fail. A sample of a server at an instant it already
 * has replaces the stored one (a retried ping adds nothing). Resolves with the number of samples written.
 */
export async function ingestSamples(sql: Sql, samples: readonly MetricSample[]): Promise<number> {
  const violations: FieldViolation[] = [];
  samples.forEach((s, i) => check(s, i, violations));
  if (violations.length > 0) throw new InvalidArgumentError(violations.slice(0, 20));
  let stored = 0;
  for (let i = 0; i < samples.length; i += BATCH_ROWS) {
    const batch = samples.slice(i, i + BATCH_ROWS);
    const values: (string | number | Date | null)[] = [];
    for (const s of batch) {
      values.push(s.serverId, s.time, s.cpuPercent, Math.round(s.memoryUsedBytes), count(s.memoryTotalBytes), count(s.diskUsedBytes), count(s.diskTotalBytes), count(s.networkInBytes), count(s.networkOutBytes));
    }
    await sql.execute(insertStatement(batch.length), ...values);
    stored += batch.length;
  }
  return stored;
}
