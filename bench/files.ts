// npm run bench:files — one object through Files on the local cloud against a plain copy of the same bytes on this
// machine: the same file copied file-to-file (read stream → write stream, same file system), then uploaded through a
// separate `dispatcher start` process (every role) (client stream in 1 MiB chunks → the local blob store) and downloaded back
// (server stream → a file). Reports each throughput, its ratio to the copy, and the dispatcher's resident memory
// (VmRSS sampled every 20 ms, and its rise over the idle process) while the object moves. One JSON line on stdout.
// Options (env): BENCH_BYTES (object size, default 1 GiB), BENCH_CHUNK_BYTES (upload chunk, default 1 MiB).
import { spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { closeSync, createReadStream, createWriteStream, openSync, readFileSync, writeFileSync } from "node:fs";
import { rm, stat } from "node:fs/promises";
import { loadavg } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { createProvisioningClient } from "../src/db/clients.js";
import { openConnection } from "../src/db/connect.js";
import { withDatabase } from "../src/db/url.js";
import { AccountStatus } from "../src/gen/proto/dispatcher/v1/provisioning.js";
import { JobState } from "../src/gen/proto/dispatcher/v1/jobs.js";
import { createApiKeyForEmail } from "../src/iam/api-keys/keys.js";
import { checkHealth, createDispatcherClients } from "../src/client/index.js";
import { benchEnvironment, CORES, round, runDispatcher, say, stopProcess } from "./support.js";

const BYTES = Number(process.env.BENCH_BYTES ?? 1024 ** 3);
const CHUNK = Number(process.env.BENCH_CHUNK_BYTES ?? 1024 ** 2);
const MiB = 1024 * 1024;

const bench = await benchEnvironment("files");
const dir = bench.env.DISPATCHER_DATA_DIR as string;
const catalogFile = join(dir, "catalog.json");
writeFileSync(catalogFile, JSON.stringify({ regions: [{ id: "local", name: "This machine", dataCenters: ["local-a"], capabilities: ["compute", "object_storage"] }] }));
bench.env.DISPATCHER_LOCAL_CLOUD_CATALOG_FILE = catalogFile;
// KM's credentials database of this run alone (its development master key lives in this run's data directory).
const credentialsDb = `bench_${bench.id}_cred`;
bench.env.DISPATCHER_KM_DATABASE_URL = withDatabase(bench.provisioningUrl, credentialsDb);
// The sources under test, not a dist/ built earlier.
bench.env.DISPATCHER_FROM_SOURCE = "1";
bench.env.DISPATCHER_KM_URL = `127.0.0.1:${bench.env.DISPATCHER_KM_PORT}`;
const loadBefore = loadavg();
say(`bench:files on ${CORES} cores — ${round(BYTES / MiB)} MiB object, ${round(CHUNK / MiB, 2)} MiB chunks; load average ${loadBefore.map((l) => l.toFixed(2)).join(" ")}`);

/** `dispatcher start` (every role, development certificates and keys made on first start), once it serves. */
async function startAll(): Promise<ChildProcess> {
  const logFile = join(dir, "dispatcher.log");
  const out = openSync(logFile, "a");
  const child = spawn(process.execPath, ["bin/dispatcher.js", "start"], { env: bench.env, stdio: ["ignore", out, out] });
  closeSync(out);
  say(`  dispatcher start: pid ${child.pid}, log ${logFile}`);
  for (const until = Date.now() + 180_000; Date.now() < until && child.exitCode === null; ) {
    if ((await checkHealth(`127.0.0.1:${bench.port}`, "", 1000).catch(() => "DOWN")) === "SERVING") return child;
    await new Promise((r) => setTimeout(r, 250));
  }
  child.kill("SIGKILL");
  throw new Error(`the dispatcher did not start; see ${logFile}`);
}

/** Resident memory of a process, from /proc (kB → bytes). */
function rss(pid: number, field: "VmRSS" | "VmHWM" = "VmRSS"): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) * 1024 : 0;
}

/** Runs `fn` while sampling the process's VmRSS every 20 ms; answers the seconds it took and the highest sample. */
async function sampled(pid: number, fn: () => Promise<void>): Promise<{ seconds: number; peakRss: number }> {
  let peak = rss(pid);
  const timer = setInterval(() => (peak = Math.max(peak, rss(pid))), 20);
  const t0 = performance.now();
  try {
    await fn();
  } finally {
    clearInterval(timer);
  }
  return { seconds: (performance.now() - t0) / 1000, peakRss: Math.max(peak, rss(pid)) };
}

const source = join(dir, "object.bin");
say(`  writing ${round(BYTES / MiB)} MiB of random bytes to ${source}`);
{
  const out = createWriteStream(source);
  const block = randomBytes(4 * MiB);
  for (let left = BYTES; left > 0; left -= block.length) {
    if (!out.write(left >= block.length ? block : block.subarray(0, left))) await new Promise<void>((r) => out.once("drain", () => r()));
  }
  await new Promise<void>((r) => out.end(r));
}
const expected = createHash("sha256");
await pipeline(createReadStream(source), expected);
const digest = expected.digest("hex");

await runDispatcher(["migrate"], bench.env);
const db = createProvisioningClient(bench.provisioningUrl, 1);
const { secret } = await createApiKeyForEmail(db, { email: "bench@local", role: "admin", kind: "service", name: "bench" });
await db.$disconnect();
let server: ChildProcess | undefined;
const c = createDispatcherClients({ address: `127.0.0.1:${bench.port}`, token: secret, retry: false });
try {
  server = await startAll();
  let account = "";
  for (const until = Date.now() + 240_000; !account && Date.now() < until; await new Promise((r) => setTimeout(r, 500))) {
    account = (await c.accounts.listAccounts({ pageSize: 100 })).accounts.find((a) => a.name === "local" && a.status === AccountStatus.ACCOUNT_STATUS_ACTIVE)?.id ?? "";
  }
  if (!account) throw new Error(`the local account did not become ACTIVE; the dispatcher's log ends:\n${readFileSync(join(dir, "dispatcher.log"), "utf8").split("\n").slice(-15).join("\n")}`);
  const { job, bucket } = await c.files.createBucket({ accountId: account, regionId: "local", name: "bench", tags: {}, idempotencyKey: "" });
  for await (const m of c.jobs.watchJob({ id: job!.id })) if (m.job && [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED].includes(m.job.state)) break;
  const bucketId = bucket!.info!.id;
  const pid = server.pid as number;
  await new Promise((r) => setTimeout(r, 2_000));
  const idleRss = rss(pid);

  // The plain copy: the same bytes file to file, on the same file system the local cloud keeps objects on.
  const copyTarget = join(dir, "copy.bin");
  const t0 = performance.now();
  await pipeline(createReadStream(source, { highWaterMark: CHUNK }), createWriteStream(copyTarget));
  const copySeconds = (performance.now() - t0) / 1000;
  await rm(copyTarget);

  const up = await sampled(pid, async () => {
    async function* messages() {
      yield { part: { $case: "header" as const, value: { bucketId, key: "bench.bin", contentType: "", metadata: {}, sha256: digest, sizeBytes: String(BYTES) } } };
      for await (const chunk of createReadStream(source, { highWaterMark: CHUNK }) as AsyncIterable<Buffer>) yield { part: { $case: "chunk" as const, value: chunk } };
    }
    const { object } = await c.files.uploadObject(messages());
    if (object?.checksum !== digest) throw new Error(`uploaded checksum ${object?.checksum} is not ${digest}`);
  });

  const downloaded = join(dir, "downloaded.bin");
  const got = createHash("sha256");
  const down = await sampled(pid, async () => {
    const out = createWriteStream(downloaded);
    for await (const m of c.files.downloadObject({ bucketId, key: "bench.bin" })) {
      if (m.part?.$case !== "chunk") continue;
      got.update(m.part.value);
      if (!out.write(m.part.value)) await new Promise<void>((r) => out.once("drain", () => r()));
    }
    await new Promise<void>((r) => out.end(r));
  });
  if (got.digest("hex") !== digest || (await stat(downloaded)).size !== BYTES) throw new Error("the download differs from the object");
  await rm(downloaded);
  await c.files.deleteObject({ bucketId, key: "bench.bin" });

  const mibps = (s: number) => round(BYTES / MiB / s);
  const result = {
    bench: "files",
    bytes: BYTES,
    chunkBytes: CHUNK,
    copyMiBps: mibps(copySeconds),
    uploadMiBps: mibps(up.seconds),
    downloadMiBps: mibps(down.seconds),
    uploadRatio: round(copySeconds / up.seconds, 3),
    downloadRatio: round(copySeconds / down.seconds, 3),
    dispatcherIdleRssMiB: round(idleRss / MiB),
    dispatcherPeakRssMiB: round(Math.max(up.peakRss, down.peakRss) / MiB),
    dispatcherRssRiseMiB: round((Math.max(up.peakRss, down.peakRss) - idleRss) / MiB),
    cores: CORES,
    loadAverage: loadBefore.map((l) => round(l, 2)),
    loadAverageAfter: loadavg().map((l) => round(l, 2)),
  };
  say(`  plain copy ${result.copyMiBps} MiB/s; upload ${result.uploadMiBps} MiB/s (${result.uploadRatio}× the copy); download ${result.downloadMiBps} MiB/s (${result.downloadRatio}×)`);
  say(`  dispatcher RSS: idle ${result.dispatcherIdleRssMiB} MiB, peak while moving ${round(BYTES / MiB)} MiB: ${result.dispatcherPeakRssMiB} MiB (+${result.dispatcherRssRiseMiB} MiB)`);
  process.stdout.write(`${JSON.stringify(result)}\n`);
} finally {
  c.close();
  if (server) await stopProcess(server);
  await rm(source, { force: true });
  await bench.drop();
  const conn = await openConnection(bench.provisioningUrl, false);
  await conn.query(`DROP DATABASE IF EXISTS \`${credentialsDb}\``).finally(() => conn.end());
  await rm(dir, { recursive: true, force: true });
}
