// Local cloud test support: a temporary data directory with its own catalog file, a driver over it (wrapped by the
// registry, as the dispatcher uses it), a target carrying the account key, and what a test asks of the real processes
// (pid alive, an address answering HTTP).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { get } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CloudDriver, DriverCallOptions, DriverTarget } from "../../../src/clouds/driver.js";
import { ensureAccountKey } from "../../../src/clouds/local/account.js";
import { BUILT_IN_CATALOG, type LocalCatalog } from "../../../src/clouds/local/catalog.js";
import { killLocalServers } from "../../../src/clouds/local/cleanup.js";
import { createLocalDriver } from "../../../src/clouds/local/driver.js";
import { createDriverRegistry } from "../../../src/clouds/registry.js";

export interface LocalCloudFixture {
  dataDir: string;
  catalogFile: string;
  driver: CloudDriver;
  target: DriverTarget;
  /** Rewrites the catalog file (the driver sees it on its next call). */
  writeCatalog(catalog: LocalCatalog): void;
  /** Kills every server process and removes the directory. */
  cleanup(): Promise<void>;
}

export function startLocalCloud(label: string, options: { stopGraceMs?: number; addressing?: boolean } = {}): LocalCloudFixture {
  const dataDir = mkdtempSync(join(tmpdir(), `local-cloud-${label}-`));
  const catalogFile = join(dataDir, "catalog.json");
  const writeCatalog = (catalog: LocalCatalog): void => writeFileSync(catalogFile, JSON.stringify(catalog));
  writeCatalog(BUILT_IN_CATALOG);
  const driver = createDriverRegistry([createLocalDriver({ dataDir, catalogFile, stopGraceMs: options.stopGraceMs ?? 3_000, ...(options.addressing === false ? { addressing: false } : {}) })]).get("local");
  const target: DriverTarget = { cloud: { id: "c1", driver: "local", endpoint: "local://" }, account: { id: "a1", providerAccountId: null }, credentials: { key: ensureAccountKey(dataDir) } };
  return {
    dataDir,
    catalogFile,
    driver,
    target,
    writeCatalog,
    async cleanup() {
      await killLocalServers(dataDir);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export function callOptions(ms = 20_000): DriverCallOptions {
  return { signal: new AbortController().signal, deadline: new Date(Date.now() + ms) };
}

/** Whether the process exists and has not exited (a zombie awaiting its parent's wait() has). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return false;
  }
}

/**
 * The status and body of GET http://<host>:<port>/ (host 127.0.0.1 unless given; from `from` when given), or the
 * error's code: ECONNREFUSED when nothing listens, ECONNRESET when a firewall turned the connection away.
 */
export function httpGet(port: number, host = "127.0.0.1", from?: string): Promise<string> {
  return new Promise((resolve) => {
    get({ host, port, path: "/", timeout: 2_000, agent: false, ...(from ? { localAddress: from } : {}) }, (res) => {
      let body = "";
      res.on("data", (c: Buffer) => (body += c.toString()));
      res.on("end", () => resolve(`${res.statusCode} ${body}`));
    }).on("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? "error"));
  });
}

