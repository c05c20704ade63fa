// `dispatcher files buckets list|get|create|delete|events` and `dispatcher files ls|stat|upload|download|rm`: object
// storage through the dispatcher's API (client.address, client.token). Uploads and downloads stream in 1 MiB chunks,
// with a progress bar on stderr when it is a terminal and plain progress lines otherwise; a download goes to a
// temporary file renamed into place once its sha256 checked out, so a file under the asked name is always whole.
import { createHash, randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { Writable } from "node:stream";
import { InvalidArgumentError as CommanderInvalidArgument, type Command } from "commander";
import type { DispatcherClients } from "../client/index.js";
import { Bucket, ObjectInfo } from "../gen/proto/dispatcher/v1/files.js";
import { Job, JobEvent, JobState, jobStateToJSON } from "../gen/proto/dispatcher/v1/jobs.js";
import { ResourceEvent } from "../gen/proto/dispatcher/v1/network.js";
import { fields, json, table, time, withClient, type ClientCommandOptions, type CommandIo } from "./client-command.js";

export type FilesCommandOptions = ClientCommandOptions & { wait?: boolean | undefined; quiet?: boolean | undefined; progressTty?: boolean | undefined };

const CHUNK_BYTES = 1024 * 1024;
const TERMINAL = new Set([JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED, JobState.JOB_STATE_CANCELLED]);
const jobState = (s: JobState): string => jobStateToJSON(s).replace("JOB_STATE_", "");

/** 1536 → "1.5 KiB". */
export function bytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

/**
 * Progress of one transfer on stderr: on a terminal a bar redrawn in place at most every 100 ms; otherwise a plain line
 * at each tenth of a known size (or every 64 MiB of an unknown one) and at the end, so logs stay readable.
 */
export class Progress {
  private done = 0;
  private lastDraw = 0;
  private lastStep = -1;
  private readonly started = Date.now();

  constructor(
    private readonly io: CommandIo,
    private readonly label: string,
    private readonly total: number | null,
    private readonly tty: boolean,
    private readonly quiet: boolean,
  ) {}

  add(n: number): void {
    this.done += n;
    if (this.quiet) return;
    if (this.tty) {
      const now = Date.now();
      if (now - this.lastDraw >= 100) {
        this.lastDraw = now;
        this.io.err(`\r${this.bar()}`);
      }
      return;
    }
    const step = this.total ? Math.floor((this.done / Math.max(1, this.total)) * 10) : Math.floor(this.done / (64 * 1024 * 1024));
    if (step > this.lastStep && step > 0 && (this.total === null || this.done < this.total)) {
      this.lastStep = step;
      this.io.err(`${this.line()}\n`);
    }
  }

  finish(): void {
    if (this.quiet) return;
    if (this.tty) this.io.err(`\r${this.bar()}\n`);
    else this.io.err(`${this.line()}\n`);
  }

  private rate(): string {
    const s = Math.max(0.001, (Date.now() - this.started) / 1000);
    return `${bytes(Math.round(this.done / s))}/s`;
  }

  private line(): string {
    const pct = this.total ? ` (${Math.floor((this.done / Math.max(1, this.total)) * 100)}%)` : "";
    return `${this.label}: ${this.done}${this.total !== null ? `/${this.total}` : ""} bytes${pct}, ${this.rate()}`;
  }

  private bar(): string {
    if (!this.total) return `${this.label} ${bytes(this.done)} ${this.rate()}\x1b[K`;
    const width = 30;
    const frac = Math.min(1, this.done / this.total);
    const filled = Math.round(frac * width);
    return `${this.label} [${"#".repeat(filled)}${".".repeat(width - filled)}] ${String(Math.floor(frac * 100)).padStart(3)}% ${bytes(this.done)}/${bytes(this.total)} ${this.rate()}\x1b[K`;
  }
}

function bucketRow(b: Bucket): string[] {
  const i = b.info!;
  return [i.id, i.name, i.state, i.accountId, i.regionId, b.objectCount, bytes(Number(b.sizeBytes)), i.providerId || "-"];
}

function describeBucket(b: Bucket): string {
  const i = b.info!;
  return fields([
    ["id", i.id],
    ["name", i.name],
    ["state", i.state],
    ["origin", i.origin],
    ["account", i.accountId],
    ["region", i.regionId],
    ["provider id", i.providerId || "-"],
    ["objects", `${b.objectCount} (${bytes(Number(b.sizeBytes))}, as last observed)`],
    ["tags", Object.entries(i.tags).map(([k, v]) => `${k}=${v}`).join(", ") || "-"],
    ["created", time(i.createTime)],
    ["updated", time(i.updateTime)],
  ]);
}

function describeObject(o: ObjectInfo): string {
  const lines: [string, string][] = [
    ["bucket", o.bucketId],
    ["key", o.key],
    ["size", `${o.sizeBytes} bytes (${bytes(Number(o.sizeBytes))})`],
    ["checksum", `${o.checksumAlgorithm}:${o.checksum}`],
    ["modified", time(o.modifyTime)],
    ["content type", o.contentType || "-"],
  ];
  for (const [k, v] of Object.entries(o.metadata).sort()) lines.push([`metadata.${k}`, v]);
  return fields(lines);
}

/** Prints the job a bucket change started; with --wait follows it to its end. Exit 0 when it succeeded (or was started). */
async function reportJob(c: DispatcherClients, io: CommandIo, options: FilesCommandOptions, job: Job | undefined, extra: Record<string, unknown> = {}): Promise<number> {
  if (!job) return 1;
  if (!options.wait) {
    if (options.json) io.out(json({ job: Job.toJSON(job), ...extra }));
    else io.out(`${job.kind} job ${job.id}: ${jobState(job.state)}  (follow it: dispatcher jobs watch ${job.id})\n`);
    return 0;
  }
  let last = job;
  if (!options.json) io.out(`${job.kind} job ${job.id}: ${jobState(job.state)}\n`);
  for await (const m of c.jobs.watchJob({ id: job.id })) {
    if (m.job) last = m.job;
    if (options.json) io.out(json({ job: m.job ? Job.toJSON(m.job) : null, event: m.event ? JobEvent.toJSON(m.event) : null, ...extra }));
  }
  if (!TERMINAL.has(last.state)) {
    io.err(`dispatcher files: the stream ended before job ${last.id} did\n`);
    return 1;
  }
  if (!options.json) io.out(`${last.kind} job ${last.id}: ${jobState(last.state)}${last.error ? ` (${last.error.code}: ${last.error.message})` : ""}\n`);
  return last.state === JobState.JOB_STATE_SUCCEEDED ? 0 : 1;
}

export async function runBucketsList(options: FilesCommandOptions & { account?: string | undefined; region?: string | undefined; all?: boolean | undefined }): Promise<number> {
  return withClient("files buckets list", options, async (c, io) => {
    const out: Bucket[] = [];
    let pageToken = "";
    do {
      const page = await c.files.listBuckets({ accountId: options.account ?? "", regionId: options.region ?? "", pageSize: 1000, pageToken, includeDeleted: options.all ?? false });
      out.push(...page.buckets);
      pageToken = page.nextPageToken;
    } while (pageToken);
    if (options.json) io.out(json({ buckets: out.map((b) => Bucket.toJSON(b)) }));
    else io.out(table(["ID", "NAME", "STATE", "ACCOUNT", "REGION", "OBJECTS", "SIZE", "PROVIDER ID"], out.map(bucketRow)));
  });
}

export async function runBucketsGet(id: string, options: FilesCommandOptions): Promise<number> {
  return withClient("files buckets get", options, async (c, io) => {
    const { bucket } = await c.files.getBucket({ id });
    io.out(options.json ? json(Bucket.toJSON(bucket!)) : describeBucket(bucket!));
  });
}

export async function runBucketsCreate(name: string, options: FilesCommandOptions & { account: string; region: string; budgetCode?: string | undefined; idempotencyKey?: string | undefined; tag?: string[] | undefined }): Promise<number> {
  return withClient("files buckets create", options, async (c, io) => {
    const tags = Object.fromEntries((options.tag ?? []).map((t) => [t.slice(0, t.indexOf("=")), t.slice(t.indexOf("=") + 1)]));
    const { job, bucket } = await c.files.createBucket({ accountId: options.account, regionId: options.region, name, tags, budgetCode: options.budgetCode ?? "", idempotencyKey: options.idempotencyKey ?? "" });
    if (!options.json) io.out(`bucket ${bucket!.info!.id} (${name})\n`);
    return reportJob(c, io, options, job, { bucket: Bucket.toJSON(bucket!) });
  });
}

export async function runBucketsDelete(id: string, options: FilesCommandOptions & { idempotencyKey?: string | undefined }): Promise<number> {
  return withClient("files buckets delete", options, async (c, io) => reportJob(c, io, options, (await c.files.deleteBucket({ id, idempotencyKey: options.idempotencyKey ?? "" })).job));
}

export async function runBucketsEvents(id: string, options: FilesCommandOptions): Promise<number> {
  return withClient("files buckets events", options, async (c, io) => {
    const events: ResourceEvent[] = [];
    let pageToken = "";
    do {
      const page = await c.files.listBucketEvents({ id, pageSize: 1000, pageToken });
      events.push(...page.events);
      pageToken = page.nextPageToken;
    } while (pageToken);
    if (options.json) io.out(json({ events: events.map((e) => ResourceEvent.toJSON(e)) }));
    else io.out(table(["TIME", "TYPE", "STATE", "JOB", "MESSAGE"], events.map((e) => [time(e.createTime), e.type, e.toState ? `${e.fromState || "-"} → ${e.toState}` : "", e.jobId || "-", e.message])));
  });
}

export async function runObjectsList(bucketId: string, options: FilesCommandOptions & { prefix?: string | undefined; limit: number; pageToken?: string | undefined; all?: boolean | undefined }): Promise<number> {
  return withClient("files ls", options, async (c, io) => {
    const out: ObjectInfo[] = [];
    let pageToken = options.pageToken ?? "";
    let next: string;
    do {
      const page = await c.files.listObjects({ bucketId, prefix: options.prefix ?? "", pageSize: options.limit, pageToken });
      out.push(...page.objects);
      next = page.nextPageToken;
      pageToken = next;
    } while (options.all && pageToken);
    if (options.json) io.out(json({ objects: out.map((o) => ObjectInfo.toJSON(o)), nextPageToken: options.all ? "" : next }));
    else {
      io.out(table(["KEY", "SIZE", "MODIFIED", "CHECKSUM"], out.map((o) => [o.key, o.sizeBytes, time(o.modifyTime), `${o.checksumAlgorithm}:${o.checksum}`])));
      if (!options.all && next) io.err(`more: --page-token ${next} (or --all)\n`);
    }
  });
}

export async function runObjectStat(bucketId: string, key: string, options: FilesCommandOptions): Promise<number> {
  return withClient("files stat", options, async (c, io) => {
    const { object } = await c.files.getObjectMetadata({ bucketId, key });
    io.out(options.json ? json(ObjectInfo.toJSON(object!)) : describeObject(object!));
  });
}

export async function runObjectRemove(bucketId: string, key: string, options: FilesCommandOptions): Promise<number> {
  return withClient("files rm", options, async (c, io) => {
    await c.files.deleteObject({ bucketId, key });
    if (!options.json) io.out(`deleted ${key}\n`);
  });
}

export interface UploadOptions extends FilesCommandOptions {
  contentType?: string | undefined;
  meta?: string[] | undefined;
}

/** Uploads `file` ("-": stdin) as `key`; the size of a file is announced, so a file that changes while read stores nothing. */
export async function runUpload(bucketId: string, key: string, file: string, options: UploadOptions): Promise<number> {
  const io = options.io ?? { out: (t: string) => void process.stdout.write(t), err: (t: string) => void process.stderr.write(t) };
  const fromStdin = file === "-";
  let size: number | null = null;
  if (!fromStdin) {
    const s = await stat(file).catch(() => null);
    if (!s?.isFile()) {
      io.err(`dispatcher files upload: ${file} is not a readable file\n`);
      return 2;
    }
    size = s.size;
  }
  const metadata = Object.fromEntries((options.meta ?? []).map((m) => [m.slice(0, m.indexOf("=")), m.slice(m.indexOf("=") + 1)]));
  return withClient("files upload", { ...options, io }, async (c) => {
    const progress = new Progress(io, `upload ${key}`, size, options.progressTty ?? process.stderr.isTTY === true, options.quiet ?? false);
    const hash = createHash("sha256");
    const source = fromStdin ? process.stdin : createReadStream(file, { highWaterMark: CHUNK_BYTES });
    async function* messages() {
      yield { part: { $case: "header" as const, value: { bucketId, key, contentType: options.contentType ?? "", metadata, sha256: "", ...(size !== null ? { sizeBytes: String(size) } : {}) } } };
      for await (const chunk of source as AsyncIterable<Buffer>) {
        // Chunks of at most CHUNK_BYTES, within every message limit.
        for (let at = 0; at < chunk.length; at += CHUNK_BYTES) {
          const part = chunk.subarray(at, at + CHUNK_BYTES);
          hash.update(part);
          progress.add(part.length);
          yield { part: { $case: "chunk" as const, value: part } };
        }
      }
    }
    const { object } = await c.files.uploadObject(messages());
    progress.finish();
    const digest = hash.digest("hex");
    if (object!.checksumAlgorithm === "sha256" && object!.checksum !== digest) {
      io.err(`dispatcher files upload: the stored object's sha256 ${object!.checksum} differs from the bytes sent (${digest})\n`);
      return 1;
    }
    if (options.json) io.out(json({ object: ObjectInfo.toJSON(object!), sha256: digest }));
    else io.out(`uploaded ${key}: ${object!.sizeBytes} bytes, ${object!.checksumAlgorithm}:${object!.checksum}\n`);
    return 0;
  });
}

/** Downloads `key` to `output` ("-": stdout; default: the key's last segment in the current directory). */
export async function runDownload(bucketId: string, key: string, options: FilesCommandOptions & { output?: string | undefined }): Promise<number> {
  const io = options.io ?? { out: (t: string) => void process.stdout.write(t), err: (t: string) => void process.stderr.write(t) };
  const output = options.output ?? (basename(key) || "download");
  const toStdout = output === "-";
  const partial = toStdout ? "" : join(dirname(output), `.${basename(output)}.${randomBytes(4).toString("hex")}.partial`);
  try {
    return await withClient("files download", { ...options, io }, async (c) => {
      const hash = createHash("sha256");
      let object: ObjectInfo | undefined;
      let progress: Progress | undefined;
      const sink: Writable = toStdout ? process.stdout : createWriteStream(partial, { mode: 0o600 });
      const opened = toStdout ? Promise.resolve() : new Promise<void>((resolve, reject) => sink.once("open", () => resolve()).once("error", reject));
      await opened;
      for await (const m of c.files.downloadObject({ bucketId, key })) {
        if (m.part?.$case === "object") {
          object = m.part.value;
          progress = new Progress(io, `download ${key}`, Number(object.sizeBytes), options.progressTty ?? process.stderr.isTTY === true, options.quiet ?? false);
        } else if (m.part?.$case === "chunk") {
          hash.update(m.part.value);
          progress?.add(m.part.value.length);
          if (!sink.write(m.part.value)) await new Promise<void>((resolve, reject) => sink.once("drain", resolve).once("error", reject));
        }
      }
      if (!toStdout) await new Promise<void>((resolve, reject) => sink.end((err?: Error | null) => (err ? reject(err) : resolve())));
      progress?.finish();
      const digest = hash.digest("hex");
      if (!object) {
        io.err("dispatcher files download: the stream ended without the object's metadata\n");
        return 1;
      }
      if (object.checksumAlgorithm === "sha256" && object.checksum !== digest) {
        io.err(`dispatcher files download: the bytes received have sha256 ${digest}, the object ${object.checksum}: nothing written\n`);
        return 1;
      }
      if (!toStdout) await rename(partial, output);
      if (!toStdout) io.out(options.json ? json({ object: ObjectInfo.toJSON(object), sha256: digest, file: output }) : `downloaded ${key} to ${output}: ${object.sizeBytes} bytes, sha256:${digest}\n`);
      return 0;
    });
  } finally {
    if (!toStdout) await rm(partial, { force: true });
  }
}

function parseLimit(v: string): number {
  const n = Number.parseInt(v, 10);
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw new CommanderInvalidArgument("must be 1 to 1000");
  return n;
}

function pair(v: string, previous: string[] = []): string[] {
  if (!/^[^=]+=/.test(v)) throw new CommanderInvalidArgument("must be key=value");
  return [...previous, v];
}

/** Adds `dispatcher files …` to the program. */
export function addFilesCommands(program: Command, configFile: () => string | undefined, setExit: (code: number) => void): void {
  const files = program.command("files").description("object storage (buckets and objects) through the dispatcher API (client.address, client.token)").option("-a, --address <host:port>", "dispatcher to call (default: client.address)");
  const common = (cmd: Command): FilesCommandOptions => ({
    configFile: configFile(),
    address: files.opts<{ address?: string }>().address,
    json: cmd.opts<{ json?: boolean }>().json,
    wait: cmd.opts<{ wait?: boolean }>().wait,
    quiet: cmd.opts<{ quiet?: boolean }>().quiet,
  });

  const buckets = files.command("buckets").description("buckets: list, get, create, delete, events");
  buckets
    .command("list")
    .alias("ls")
    .description("buckets in your accounts")
    .option("--account <id>", "only this account's")
    .option("--region <id>", "only this region's")
    .option("--all", "deleted ones too", false)
    .option("--json", "JSON instead of a table", false)
    .action(async (opts: { account?: string; region?: string; all?: boolean }, cmd: Command) => setExit(await runBucketsList({ ...common(cmd), ...opts })));
  buckets
    .command("get <id>")
    .description("one bucket as last observed")
    .option("--json", "JSON instead of text", false)
    .action(async (id: string, _opts: unknown, cmd: Command) => setExit(await runBucketsGet(id, common(cmd))));
  buckets
    .command("create <name>")
    .description("create a bucket (a bucket.create job, done when the cloud shows it); needs object_storage in the region")
    .requiredOption("--account <id>", "account")
    .requiredOption("--region <id>", "region")
    .option("--budget-code <code>", "who pays for the bytes it holds (default: the account's)")
    .option("--tag <key=value>", "a tag (repeatable)", pair)
    .option("-k, --idempotency-key <key>", "the same key again returns the same bucket and job")
    .option("-w, --wait", "follow the job to its end; exit 0 only when the bucket exists", false)
    .option("--json", "JSON instead of text", false)
    .action(async (name: string, opts: { account: string; region: string; budgetCode?: string; tag?: string[]; idempotencyKey?: string }, cmd: Command) => setExit(await runBucketsCreate(name, { ...common(cmd), ...opts })));
  buckets
    .command("delete <id>")
    .description("delete an empty bucket (a bucket.delete job); refused while it holds objects")
    .option("-k, --idempotency-key <key>", "the same key again returns the same job")
    .option("-w, --wait", "follow the job to its end; exit 0 only when the bucket is gone", false)
    .option("--json", "JSON instead of text", false)
    .action(async (id: string, opts: { idempotencyKey?: string }, cmd: Command) => setExit(await runBucketsDelete(id, { ...common(cmd), ...opts })));
  buckets
    .command("events <id>")
    .description("a bucket's history, oldest first")
    .option("--json", "JSON instead of a table", false)
    .action(async (id: string, _opts: unknown, cmd: Command) => setExit(await runBucketsEvents(id, common(cmd))));

  files
    .command("ls <bucket>")
    .description("objects in a bucket, in key order")
    .option("-p, --prefix <prefix>", "only keys starting with this")
    .option("-n, --limit <n>", "objects per page (1–1000)", parseLimit, 100)
    .option("--page-token <token>", "continue a previous listing")
    .option("--all", "fetch every page", false)
    .option("--json", "JSON instead of a table", false)
    .action(async (bucket: string, opts: { prefix?: string; limit: number; pageToken?: string; all?: boolean }, cmd: Command) => setExit(await runObjectsList(bucket, { ...common(cmd), ...opts })));
  files
    .command("stat <bucket> <key>")
    .description("an object's size, checksum, time, content type and metadata")
    .option("--json", "JSON instead of text", false)
    .action(async (bucket: string, key: string, _opts: unknown, cmd: Command) => setExit(await runObjectStat(bucket, key, common(cmd))));
  files
    .command("upload <bucket> <key> <file>")
    .description("upload a file ('-': stdin) as an object, replacing one of the same key; progress on stderr")
    .option("--content-type <type>", "e.g. text/plain")
    .option("--meta <key=value>", "user metadata (repeatable; never put secrets here)", pair)
    .option("-q, --quiet", "no progress", false)
    .option("--json", "JSON instead of text", false)
    .action(async (bucket: string, key: string, file: string, opts: { contentType?: string; meta?: string[] }, cmd: Command) => setExit(await runUpload(bucket, key, file, { ...common(cmd), ...opts })));
  files
    .command("download <bucket> <key>")
    .description("download an object; the file appears once its sha256 checked out; progress on stderr")
    .option("-o, --output <file>", "where to write ('-': stdout; default: the key's last segment)")
    .option("-q, --quiet", "no progress", false)
    .option("--json", "JSON instead of text", false)
    .action(async (bucket: string, key: string, opts: { output?: string }, cmd: Command) => setExit(await runDownload(bucket, key, { ...common(cmd), ...opts })));
  files
    .command("rm <bucket> <key>")
    .description("delete an object (one that does not exist is no error)")
    .option("--json", "no output on success", false)
    .action(async (bucket: string, key: string, _opts: unknown, cmd: Command) => setExit(await runObjectRemove(bucket, key, common(cmd))));
}
