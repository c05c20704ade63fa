// `dispatcher volumes|snapshots|images …`: block storage and machine images through the dispatcher's API
// (client.address, client.token / DISPATCHER_CLIENT_TOKEN). Actions print their job; --wait follows it to its end
// and exits 0 only when it succeeded (a volume seen attached, a snapshot seen COMPLETED, …).
import { InvalidArgumentError as CommanderInvalidArgument, type Command } from "commander";
import type { DispatcherClients } from "../client/index.js";
import { ResourceEvent, type ResourceInfo } from "../gen/proto/dispatcher/v1/network.js";
import { MachineImage, Snapshot, Volume } from "../gen/proto/dispatcher/v1/storage.js";
import { accountIdOf, fields, hourly, json, optionalAccountIdOf, table, time, withClient, type ClientCommandOptions, type CommandIo } from "./client-command.js";
import { reportJob } from "./job-follow.js";

type Options = ClientCommandOptions & { wait?: boolean | undefined };
type Run = (c: DispatcherClients, io: CommandIo) => Promise<number | void>;

const GIB = 2 ** 30;

function parseTag(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const eq = value.indexOf("=");
  if (eq < 1) throw new CommanderInvalidArgument("key=value");
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
}
const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

function parseInt32(min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) throw new CommanderInvalidArgument(`an integer from ${min} to ${max}`);
    return n;
  };
}

function infoLines(i: ResourceInfo | undefined): [string, string][] {
  if (!i) return [];
  return [
    ["id", i.id],
    ["name", i.name],
    ["state", i.state],
    ["account", i.accountId],
    ["region", i.regionId],
    ["provider id", i.providerId || "-"],
    ["origin", i.origin],
    ["budget code", i.budgetCode || "-"],
    ["tags", Object.entries(i.tags).map(([k, v]) => `${k}=${v}`).join(", ") || "-"],
    ["created", time(i.createTime)],
    ["updated", time(i.updateTime)],
  ];
}

const eventRow = (e: ResourceEvent): string[] => [time(e.createTime), e.type, e.toState ? (e.fromState ? `${e.fromState} → ${e.toState}` : e.toState) : "", e.jobId || "-", e.message];

/** Every page of a resource's history, oldest first, as a table or JSON. */
async function printEvents(io: CommandIo, options: Options, page: (token: string) => Promise<{ events: ResourceEvent[]; nextPageToken: string }>): Promise<void> {
  const events: ResourceEvent[] = [];
  let token = "";
  do {
    const p = await page(token);
    events.push(...p.events);
    token = p.nextPageToken;
  } while (token);
  io.out(options.json ? json({ events: events.map((e) => ResourceEvent.toJSON(e)) }) : table(["TIME", "TYPE", "STATE", "JOB", "MESSAGE"], events.map(eventRow)));
}

const describeVolume = (v: Volume): string =>
  fields([
    ...infoLines(v.info),
    ["size", `${v.sizeGib} GiB (${hourly(v.hourlyPriceMicros)})`],
    ["type", v.volumeType || "-"],
    ["data center", v.dataCenter || "-"],
    ["snapshot", v.snapshotId || "-"],
    ["attached", v.attachment ? `to server ${v.attachment.serverId || v.attachment.serverProviderId} as ${v.attachment.device}` : "no"],
  ]);
const describeSnapshot = (s: Snapshot): string => fields([...infoLines(s.info), ["volume", s.volumeId || "-"], ["size", `${s.sizeGib} GiB (${hourly(s.hourlyPriceMicros)})`], ["description", s.description || "-"]]);
const describeImage = (i: MachineImage): string =>
  fields([...infoLines(i.info), ["public", i.public ? "yes" : "no"], ["platform", i.platform || "-"], ["source server", i.sourceServerId || "-"], ["size", `${(Number(i.sizeBytes) / GIB).toFixed(2)} GiB (${hourly(i.hourlyPriceMicros)})`], ["description", i.description || "-"]]);

const volumeRow = (v: Volume): string[] => [v.info?.id ?? "", v.info?.name ?? "", v.info?.state ?? "", v.info?.regionId ?? "", `${v.sizeGib} GiB`, v.volumeType, v.attachment ? `${v.attachment.serverId || v.attachment.serverProviderId} ${v.attachment.device}` : "-", v.info?.budgetCode ?? ""];
const snapshotRow = (s: Snapshot): string[] => [s.info?.id ?? "", s.info?.name ?? "", s.info?.state ?? "", s.info?.regionId ?? "", `${s.sizeGib} GiB`, s.volumeId || "-"];
const imageRow = (i: MachineImage): string[] => [i.info?.id ?? "", i.info?.name ?? "", i.info?.state ?? "", i.public ? "public" : "own", i.platform, i.sourceServerId || "-"];

/** Adds `dispatcher volumes|snapshots|images …` to the program. */
export function addStorageCommands(program: Command, configFile: () => string | undefined, setExit: (code: number) => void): void {
  const group = (name: string, description: string): { cmd: Command; run: (what: string, cmd: Command, fn: Run) => Promise<void>; opts: (cmd: Command) => Options } => {
    const cmd = program.command(name).description(description).option("-a, --address <host:port>", "dispatcher to call (default: client.address)");
    const opts = (sub: Command): Options => ({ configFile: configFile(), address: cmd.opts<{ address?: string }>().address, json: sub.opts<{ json?: boolean }>().json, wait: sub.opts<{ wait?: boolean }>().wait });
    return { cmd, opts, run: async (what, sub, fn) => setExit(await withClient(`${name} ${what}`, opts(sub), fn)) };
  };
  const action = (c: Command) => c.option("-k, --idempotency-key <key>", "the same key again returns the same job").option("-w, --wait", "follow the job to its end; exit 0 only when it succeeded", false).option("--json", "JSON instead of text", false);
  const listing = (c: Command) =>
    c.option("--account <id|name>", "only this account's").option("--region <id>", "only this region's").option("--tag <key=value>", "only those with this tag (repeatable)", parseTag).option("--deleted", "include deleted ones", false).option("--all", "fetch every page", false).option("--json", "one JSON object instead of a table", false);

  // ---- volumes ----
  const v = group("volumes", "block storage volumes through the dispatcher API (client.address, client.token)");
  listing(v.cmd.command("list").alias("ls").description("volumes in your accounts")).action((o: { account?: string; region?: string; tag?: Record<string, string>; deleted: boolean; all: boolean }, sub: Command) =>
    v.run("list", sub, async (c, io) => {
      const out: Volume[] = [];
      const accountId = await optionalAccountIdOf(c, o.account);
      let token = "";
      do {
        const page = await c.volumes.listVolumes({ pageSize: 100, pageToken: token, accountId, regionId: o.region ?? "", tags: o.tag ?? {}, includeDeleted: o.deleted });
        out.push(...page.volumes);
        token = page.nextPageToken;
      } while (o.all && token);
      io.out(v.opts(sub).json ? json({ volumes: out.map((x) => Volume.toJSON(x)), nextPageToken: token }) : table(["ID", "NAME", "STATE", "REGION", "SIZE", "TYPE", "ATTACHED", "BUDGET"], out.map(volumeRow)));
      if (token && !o.all) io.err("more volumes: --all\n");
    }),
  );
  v.cmd.command("get <id>").description("one volume as last observed").option("--json", "JSON instead of text", false).action((id: string, _o: unknown, sub: Command) =>
    v.run("get", sub, async (c, io) => {
      const { volume } = await c.volumes.getVolume({ id });
      if (volume) io.out(v.opts(sub).json ? json({ volume: Volume.toJSON(volume) }) : describeVolume(volume));
    }),
  );
  v.cmd.command("events <id>").description("a volume's history, oldest first").option("--json", "JSON instead of a table", false).action((id: string, _o: unknown, sub: Command) =>
    v.run("events", sub, (c, io) => printEvents(io, v.opts(sub), (pageToken) => c.volumes.listVolumeEvents({ id, pageSize: 1000, pageToken }))),
  );
  action(
    v.cmd
      .command("create")
      .description("create a volume (a volume.create job, done when the volume is seen AVAILABLE)")
      .requiredOption("--account <id|name>", "account (id or name)")
      .requiredOption("--region <id>", "region")
      .requiredOption("--size <GiB>", "size in GiB (1–16384; from a snapshot at least its size)", parseInt32(1, 16_384))
      .option("--type <type>", "volume type (default: the provider's)")
      .option("--data-center <name>", "data center (default: the region's first)")
      .option("--snapshot <id>", "start from this snapshot")
      .option("--name <name>", "name")
      .option("--budget-code <code>", "budget code to bill (default: the account's)")
      .option("--tag <key=value>", "a tag (repeatable)", parseTag),
  ).action((o: { account: string; region: string; size: number; type?: string; dataCenter?: string; snapshot?: string; name?: string; budgetCode?: string; tag?: Record<string, string>; idempotencyKey?: string }, sub: Command) =>
    v.run("create", sub, async (c, io) => {
      const { job, volume } = await c.volumes.createVolume({ accountId: await accountIdOf(c, o.account), regionId: o.region, sizeGib: o.size, volumeType: o.type ?? "", dataCenter: o.dataCenter ?? "", snapshotId: o.snapshot ?? "", name: o.name ?? "", budgetCode: o.budgetCode ?? "", tags: o.tag ?? {}, idempotencyKey: o.idempotencyKey ?? "" });
      if (volume && !v.opts(sub).json) io.out(`volume ${volume.info?.id} (${volume.info?.name}): ${volume.info?.state}\n`);
      const code = await reportJob("volumes create", c, io, v.opts(sub), job, { volume: volume ? Volume.toJSON(volume) : null });
      if (code === 0 && v.opts(sub).wait && volume?.info && !v.opts(sub).json) io.out(describeVolume((await c.volumes.getVolume({ id: volume.info.id })).volume ?? volume));
      return code;
    }),
  );
  action(v.cmd.command("attach <id>").description("attach to a server (done when seen attached on the device)").requiredOption("--server <id>", "the server").requiredOption("--device <name>", "device name, e.g. /dev/sdf")).action(
    (id: string, o: { server: string; device: string; idempotencyKey?: string }, sub: Command) =>
      v.run("attach", sub, async (c, io) => reportJob("volumes attach", c, io, v.opts(sub), (await c.volumes.attachVolume({ id, serverId: o.server, device: o.device, idempotencyKey: o.idempotencyKey ?? "" })).job)),
  );
  action(v.cmd.command("detach <id>").description("detach from its server (done when seen detached)")).action((id: string, o: { idempotencyKey?: string }, sub: Command) =>
    v.run("detach", sub, async (c, io) => reportJob("volumes detach", c, io, v.opts(sub), (await c.volumes.detachVolume({ id, idempotencyKey: o.idempotencyKey ?? "" })).job)),
  );
  action(v.cmd.command("delete <id>").description("delete a detached volume (done when the cloud no longer has it)")).action((id: string, o: { idempotencyKey?: string }, sub: Command) =>
    v.run("delete", sub, async (c, io) => reportJob("volumes delete", c, io, v.opts(sub), (await c.volumes.deleteVolume({ id, idempotencyKey: o.idempotencyKey ?? "" })).job)),
  );
  action(v.cmd.command("tag <id>").description("set or remove tags (done when the cloud shows them)").option("--set <key=value>", "set a tag (repeatable)", parseTag).option("--remove <key>", "remove a tag (repeatable)", collect)).action(
    (id: string, o: { set?: Record<string, string>; remove?: string[]; idempotencyKey?: string }, sub: Command) =>
      v.run("tag", sub, async (c, io) => reportJob("volumes tag", c, io, v.opts(sub), (await c.volumes.setVolumeTags({ id, change: { set: o.set ?? {}, remove: o.remove ?? [] }, idempotencyKey: o.idempotencyKey ?? "" })).job)),
  );

  // ---- snapshots ----
  const s = group("snapshots", "snapshots of volumes through the dispatcher API (client.address, client.token)");
  listing(s.cmd.command("list").alias("ls").description("snapshots in your accounts")).action((o: { account?: string; region?: string; tag?: Record<string, string>; deleted: boolean; all: boolean }, sub: Command) =>
    s.run("list", sub, async (c, io) => {
      const out: Snapshot[] = [];
      const accountId = await optionalAccountIdOf(c, o.account);
      let token = "";
      do {
        const page = await c.snapshots.listSnapshots({ pageSize: 100, pageToken: token, accountId, regionId: o.region ?? "", tags: o.tag ?? {}, includeDeleted: o.deleted });
        out.push(...page.snapshots);
        token = page.nextPageToken;
      } while (o.all && token);
      io.out(s.opts(sub).json ? json({ snapshots: out.map((x) => Snapshot.toJSON(x)), nextPageToken: token }) : table(["ID", "NAME", "STATE", "REGION", "SIZE", "VOLUME"], out.map(snapshotRow)));
      if (token && !o.all) io.err("more snapshots: --all\n");
    }),
  );
  s.cmd.command("get <id>").description("one snapshot as last observed").option("--json", "JSON instead of text", false).action((id: string, _o: unknown, sub: Command) =>
    s.run("get", sub, async (c, io) => {
      const { snapshot } = await c.snapshots.getSnapshot({ id });
      if (snapshot) io.out(s.opts(sub).json ? json({ snapshot: Snapshot.toJSON(snapshot) }) : describeSnapshot(snapshot));
    }),
  );
  s.cmd.command("events <id>").description("a snapshot's history, oldest first").option("--json", "JSON instead of a table", false).action((id: string, _o: unknown, sub: Command) =>
    s.run("events", sub, (c, io) => printEvents(io, s.opts(sub), (pageToken) => c.snapshots.listSnapshotEvents({ id, pageSize: 1000, pageToken }))),
  );
  action(
    s.cmd
      .command("create")
      .description("snapshot a volume (a snapshot.create job, done when the snapshot is seen COMPLETED)")
      .requiredOption("--volume <id>", "the volume")
      .option("--name <name>", "name")
      .option("--description <text>", "description")
      .option("--budget-code <code>", "budget code to bill (default: the account's)")
      .option("--tag <key=value>", "a tag (repeatable)", parseTag),
  ).action((o: { volume: string; name?: string; description?: string; budgetCode?: string; tag?: Record<string, string>; idempotencyKey?: string }, sub: Command) =>
    s.run("create", sub, async (c, io) => {
      const { job, snapshot } = await c.snapshots.createSnapshot({ volumeId: o.volume, name: o.name ?? "", description: o.description ?? "", budgetCode: o.budgetCode ?? "", tags: o.tag ?? {}, idempotencyKey: o.idempotencyKey ?? "" });
      if (snapshot && !s.opts(sub).json) io.out(`snapshot ${snapshot.info?.id} (${snapshot.info?.name}): ${snapshot.info?.state}\n`);
      return reportJob("snapshots create", c, io, s.opts(sub), job, { snapshot: snapshot ? Snapshot.toJSON(snapshot) : null });
    }),
  );
  action(s.cmd.command("delete <id>").description("delete a snapshot (done when the cloud no longer has it)")).action((id: string, o: { idempotencyKey?: string }, sub: Command) =>
    s.run("delete", sub, async (c, io) => reportJob("snapshots delete", c, io, s.opts(sub), (await c.snapshots.deleteSnapshot({ id, idempotencyKey: o.idempotencyKey ?? "" })).job)),
  );

  // ---- images ----
  const i = group("images", "machine images through the dispatcher API (client.address, client.token)");
  i.cmd
    .command("list")
    .alias("ls")
    .description("an account's own images in a region, and the public ones beside them")
    .requiredOption("--account <id|name>", "account (id or name)")
    .requiredOption("--region <id>", "region")
    .option("--own", "only the account's own", false)
    .option("--deleted", "include deleted own images", false)
    .option("--json", "one JSON object instead of a table", false)
    .action((o: { account: string; region: string; own: boolean; deleted: boolean }, sub: Command) =>
      i.run("list", sub, async (c, io) => {
        const out: MachineImage[] = [];
        const accountId = await accountIdOf(c, o.account);
        let token = "";
        do {
          const page = await c.images.listMachineImages({ accountId, regionId: o.region, ownOnly: o.own, includeDeleted: o.deleted, pageSize: 100, pageToken: token });
          out.push(...page.images);
          token = page.nextPageToken;
        } while (token);
        io.out(i.opts(sub).json ? json({ images: out.map((x) => MachineImage.toJSON(x)) }) : table(["ID", "NAME", "STATE", "KIND", "PLATFORM", "SOURCE SERVER"], out.map(imageRow)));
      }),
    );
  i.cmd.command("get <id>").description("one of the account's images as last observed").option("--json", "JSON instead of text", false).action((id: string, _o: unknown, sub: Command) =>
    i.run("get", sub, async (c, io) => {
      const { image } = await c.images.getImage({ id });
      if (image) io.out(i.opts(sub).json ? json({ image: MachineImage.toJSON(image) }) : describeImage(image));
    }),
  );
  i.cmd.command("events <id>").description("an image's history, oldest first").option("--json", "JSON instead of a table", false).action((id: string, _o: unknown, sub: Command) =>
    i.run("events", sub, (c, io) => printEvents(io, i.opts(sub), (pageToken) => c.images.listImageEvents({ id, pageSize: 1000, pageToken }))),
  );
  action(
    i.cmd
      .command("create")
      .description("make an image of a server's root disk (an image.create job, done when the image is seen AVAILABLE); launch from it with `servers launch --image <its id>`")
      .requiredOption("--server <id>", "the server")
      .option("--name <name>", "name")
      .option("--description <text>", "description")
      .option("--budget-code <code>", "budget code to bill (default: the account's)")
      .option("--tag <key=value>", "a tag (repeatable)", parseTag),
  ).action((o: { server: string; name?: string; description?: string; budgetCode?: string; tag?: Record<string, string>; idempotencyKey?: string }, sub: Command) =>
    i.run("create", sub, async (c, io) => {
      const { job, image } = await c.images.createImage({ serverId: o.server, name: o.name ?? "", description: o.description ?? "", budgetCode: o.budgetCode ?? "", tags: o.tag ?? {}, idempotencyKey: o.idempotencyKey ?? "" });
      if (image && !i.opts(sub).json) io.out(`image ${image.info?.id} (${image.info?.name}): ${image.info?.state}\n`);
      return reportJob("images create", c, io, i.opts(sub), job, { image: image ? MachineImage.toJSON(image) : null });
    }),
  );
  action(i.cmd.command("delete <id>").description("deregister an image (servers launched from it keep running)")).action((id: string, o: { idempotencyKey?: string }, sub: Command) =>
    i.run("delete", sub, async (c, io) => reportJob("images delete", c, io, i.opts(sub), (await c.images.deleteImage({ id, idempotencyKey: o.idempotencyKey ?? "" })).job)),
  );
}
