// `dispatcher files buckets list|get|create|delete|events` and `dispatcher files ls|stat|upload|download|rm`: object
// storage through the dispatcher's API (client.address, client.token). Buckets and listings here; an object's bytes
// (upload, download) in files-transfer.ts.
import { InvalidArgumentError as CommanderInvalidArgument, type Command } from "commander";
import { Bucket, ObjectInfo } from "../gen/proto/dispatcher/v1/files.js";
import { ResourceEvent } from "../gen/proto/dispatcher/v1/network.js";
import { accountIdOf, fields, json, optionalAccountIdOf, table, time, withClient } from "./client-command.js";
import { runDownload, runUpload, type FilesCommandOptions } from "./files-transfer.js";
import { reportJob } from "./job-follow.js";
import { bytes } from "./transfer-progress.js";

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

export async function runBucketsList(options: FilesCommandOptions & { account?: string | undefined; region?: string | undefined; all?: boolean | undefined }): Promise<number> {
  return withClient("files buckets list", options, async (c, io) => {
    const out: Bucket[] = [];
    const accountId = await optionalAccountIdOf(c, options.account);
    let pageToken = "";
    do {
      const page = await c.files.listBuckets({ accountId, regionId: options.region ?? "", pageSize: 1000, pageToken, includeDeleted: options.all ?? false });
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
    const { job, bucket } = await c.files.createBucket({ accountId: await accountIdOf(c, options.account), regionId: options.region, name, tags, budgetCode: options.budgetCode ?? "", idempotencyKey: options.idempotencyKey ?? "" });
    if (!options.json) io.out(`bucket ${bucket!.info!.id} (${name})\n`);
    return reportJob("files buckets create", c, io, options, job, { bucket: Bucket.toJSON(bucket!) }, "ends");
  });
}

export async function runBucketsDelete(id: string, options: FilesCommandOptions & { idempotencyKey?: string | undefined }): Promise<number> {
  return withClient("files buckets delete", options, async (c, io) => reportJob("files buckets delete", c, io, options, (await c.files.deleteBucket({ id, idempotencyKey: options.idempotencyKey ?? "" })).job, {}, "ends"));
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
    .option("--account <id|name>", "only this account's")
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
    .requiredOption("--account <id|name>", "account (id or name)")
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
