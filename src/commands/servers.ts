// `dispatcher servers list|get|launch|start|stop|reboot|terminate|firewalls|tag|events|products|images`: the server
// lifecycle through the dispatcher's API (client.address, client.token / DISPATCHER_CLIENT_TOKEN). Actions print their
// job; --wait follows it to its end with its progress and exits 0 only when it succeeded.
import { readFileSync } from "node:fs";
import { InvalidArgumentError as CommanderInvalidArgument, type Command } from "commander";
import { AgentState, agentStateToJSON, Image, Product, Server, ServerEvent, ServerState, serverStateToJSON, type LaunchVolume } from "../gen/proto/dispatcher/v1/servers.js";
import { accountIdOf, fields, hourly, json, table, time, withClient, type ClientCommandOptions } from "./client-command.js";
import { reportJob } from "./job-follow.js";

export type ServerCommandOptions = ClientCommandOptions & { wait?: boolean | undefined };

export const serverState = (s: ServerState): string => serverStateToJSON(s).replace("SERVER_STATE_", "");
/** "connected", "unreachable", … ("-" for a server whose agent state is not known). */
const agentState = (s: Server): string => (s.agentState ? agentStateToJSON(s.agentState).replace("AGENT_STATE_", "").toLowerCase() : "-");
const addresses = (s: Server): string => [...(s.addresses?.public ?? []), ...(s.addresses?.private ?? [])].join(",") || "-";

function serverRow(s: Server): string[] {
  return [s.id, s.name, serverState(s.state), agentState(s), s.accountId, `${s.regionId}/${s.dataCenter || "-"}`, s.productId, s.providerId || "-", addresses(s), s.budgetCode];
}

function describeServer(s: Server): string {
  const lines: [string, string][] = [
    ["id", s.id],
    ["name", s.name],
    ["state", `${serverState(s.state)} since ${time(s.stateChangeTime)}`],
    ["agent", agentState(s)],
    ["origin", s.origin === 2 ? "discovered" : "launched"],
    ["account", s.accountId],
    ["region", s.regionId],
    ["data center", s.dataCenter || "-"],
    ["provider id", s.providerId || "-"],
    ["product", `${s.productId} (${hourly(s.hourlyPriceMicros)}, in the account's currency)`],
    ["image", s.imageId],
    ["budget code", s.budgetCode],
    ["tags", Object.entries(s.tags).map(([k, v]) => `${k}=${v}`).join(", ") || "-"],
    ["addresses", `public ${s.addresses?.public.join(", ") || "-"}; private ${s.addresses?.private.join(", ") || "-"}`],
    ["launched", time(s.launchTime)],
    ["terminated", time(s.terminateTime)],
    ["created", time(s.createTime)],
  ];
  for (const [k, v] of Object.entries(s.details).sort()) lines.push([`details.${k}`, v]);
  return fields(lines);
}

function eventRow(e: ServerEvent): string[] {
  const move = e.toState ? (e.fromState ? `${serverState(e.fromState)} → ${serverState(e.toState)}` : serverState(e.toState)) : "";
  return [time(e.createTime), e.type, move, e.jobId || "-", e.message];
}

export interface ListServersOptions extends ServerCommandOptions {
  account?: string | undefined;
  region?: string | undefined;
  state?: ServerState | undefined;
  budgetCode?: string | undefined;
  agent?: AgentState | undefined;
  tag?: Record<string, string> | undefined;
  limit: number;
  pageToken?: string | undefined;
  all?: boolean | undefined;
}

export async function runServersList(options: ListServersOptions): Promise<number> {
  return withClient("servers list", options, async (c, io) => {
    const servers: Server[] = [];
    let token = options.pageToken ?? "";
    const accountId = options.account ? await accountIdOf(c, options.account) : "";
    do {
      const page = await c.servers.listServers({ pageSize: options.limit, pageToken: token, accountId, regionId: options.region ?? "", state: options.state ?? 0, budgetCode: options.budgetCode ?? "", agentState: options.agent ?? 0, tags: options.tag ?? {} });
      servers.push(...page.servers);
      token = page.nextPageToken;
    } while (options.all && token);
    if (options.json) io.out(json({ servers: servers.map((s) => Server.toJSON(s)), nextPageToken: token }));
    else {
      io.out(table(["ID", "NAME", "STATE", "AGENT", "ACCOUNT", "REGION/DC", "PRODUCT", "PROVIDER ID", "ADDRESSES", "BUDGET"], servers.map(serverRow)));
      if (token) io.err(`more servers: --page-token ${token} (or --all)\n`);
    }
  });
}

export async function runServersGet(id: string, options: ServerCommandOptions): Promise<number> {
  return withClient("servers get", options, async (c, io) => {
    const { server } = await c.servers.getServer({ id });
    if (!server) return 1;
    io.out(options.json ? json({ server: Server.toJSON(server) }) : describeServer(server));
  });
}

export async function runServersEvents(id: string, options: ServerCommandOptions): Promise<number> {
  return withClient("servers events", options, async (c, io) => {
    const events: ServerEvent[] = [];
    let token = "";
    do {
      const page = await c.servers.listServerEvents({ id, pageSize: 1000, pageToken: token });
      events.push(...page.events);
      token = page.nextPageToken;
    } while (token);
    io.out(options.json ? json({ events: events.map((e) => ServerEvent.toJSON(e)) }) : table(["TIME", "TYPE", "STATE", "JOB", "MESSAGE"], events.map(eventRow)));
  });
}

export interface LaunchOptions extends ServerCommandOptions {
  account: string;
  region: string;
  product: string;
  image: string;
  dataCenter?: string | undefined;
  name?: string | undefined;
  budgetCode?: string | undefined;
  idempotencyKey?: string | undefined;
  firewall?: string[] | undefined;
  key?: string | undefined;
  /** A file whose content is the user data script; "-" reads standard input. */
  userDataFile?: string | undefined;
  /** The id of a static address to associate once the server runs. */
  staticAddress?: string | undefined;
  tag?: Record<string, string> | undefined;
  volume?: LaunchVolume[] | undefined;
}

/** `--volume /dev/sdf=VOLUME_ID` (an existing volume) or `--volume /dev/sdf=10` (a new one of 10 GiB) or `/dev/sdf=10:gp3`. */
function parseVolume(value: string, previous: LaunchVolume[] = []): LaunchVolume[] {
  const m = /^(\/dev\/[a-z][a-z0-9]{1,15})=(?:(\d{1,5})(?::([A-Za-z0-9_.-]+))?|([A-Za-z0-9]{1,64}))$/.exec(value);
  if (!m) throw new CommanderInvalidArgument("DEVICE=VOLUME_ID or DEVICE=SIZE_GIB[:TYPE], e.g. /dev/sdf=10");
  const [, device, size, type, id] = m;
  return [...previous, { device: device as string, volumeId: id ?? "", sizeGib: size ? Number(size) : 0, volumeType: type ?? "", snapshotId: "" }];
}

/** The user data script of --user-data-file, read whole; the file is the caller's, the text is never printed. */
function readUserData(file: string | undefined): string {
  if (!file) return "";
  return readFileSync(file === "-" ? 0 : file, "utf8");
}

export async function runServersLaunch(options: LaunchOptions): Promise<number> {
  return withClient("servers launch", options, async (c, io) => {
    const { job, server, volumeJobs } = await c.servers.launchServer({
      accountId: await accountIdOf(c, options.account),
      regionId: options.region,
      dataCenter: options.dataCenter ?? "",
      productId: options.product,
      imageId: options.image,
      name: options.name ?? "",
      budgetCode: options.budgetCode ?? "",
      idempotencyKey: options.idempotencyKey ?? "",
      firewallIds: options.firewall ?? [],
      keyPairId: options.key ?? "",
      userData: readUserData(options.userDataFile),
      addressId: options.staticAddress ?? "",
      tags: options.tag ?? {},
      volumes: options.volume ?? [],
    });
    if (server && !options.json) io.out(`server ${server.id} (${server.name}): ${serverState(server.state)}\n`);
    let code = await reportJob("servers launch", c, io, options, job, { server: server ? Server.toJSON(server) : null }, "percent");
    // Each volume named at launch: its attach job, done when the volume is seen attached.
    for (const attach of volumeJobs) if (code === 0) code = await reportJob("servers launch", c, io, options, attach, {}, "percent");
    if (code === 0 && options.wait && server && !options.json) {
      const { server: now } = await c.servers.getServer({ id: server.id });
      if (now) io.out(describeServer(now));
    }
    return code;
  });
}

export async function runServerFirewalls(id: string, options: ServerCommandOptions & { firewall: string[]; idempotencyKey?: string | undefined }): Promise<number> {
  return withClient("servers firewalls", options, async (c, io) => {
    const { job } = await c.servers.setServerFirewalls({ id, firewallIds: options.firewall, idempotencyKey: options.idempotencyKey ?? "" });
    return reportJob("servers firewalls", c, io, options, job, {}, "percent");
  });
}

export async function runServerTags(id: string, options: ServerCommandOptions & { set?: Record<string, string> | undefined; remove?: string[] | undefined; idempotencyKey?: string | undefined }): Promise<number> {
  return withClient("servers tag", options, async (c, io) => {
    const { job } = await c.servers.setServerTags({ id, set: options.set ?? {}, remove: options.remove ?? [], idempotencyKey: options.idempotencyKey ?? "" });
    return reportJob("servers tag", c, io, options, job, {}, "percent");
  });
}

export type ServerAction = "start" | "stop" | "reboot" | "terminate";

export async function runServerAction(action: ServerAction, id: string, options: ServerCommandOptions & { idempotencyKey?: string | undefined }): Promise<number> {
  return withClient(`servers ${action}`, options, async (c, io) => {
    const request = { id, idempotencyKey: options.idempotencyKey ?? "" };
    const call = { start: () => c.servers.startServer(request), stop: () => c.servers.stopServer(request), reboot: () => c.servers.rebootServer(request), terminate: () => c.servers.terminateServer(request) }[action];
    const { job } = await call();
    return reportJob(`servers ${action}`, c, io, options, job, {}, "percent");
  });
}

export async function runCatalog(what: "products" | "images", options: ServerCommandOptions & { account: string; region: string }): Promise<number> {
  return withClient(`servers ${what}`, options, async (c, io) => {
    const q = { accountId: await accountIdOf(c, options.account), regionId: options.region };
    if (what === "products") {
      const { products } = await c.servers.listProducts(q);
      io.out(options.json ? json({ products: products.map((p) => Product.toJSON(p)) }) : table(["ID", "NAME", "CPUS", "MEMORY MB", "DISK GB", "PRICE"], products.map((p) => [p.id, p.name, String(p.cpus), String(p.memoryMb), String(p.diskGb), hourly(p.hourlyPriceMicros)])));
    } else {
      const { images } = await c.servers.listImages(q);
      io.out(options.json ? json({ images: images.map((i) => Image.toJSON(i)) }) : table(["ID", "NAME", "PLATFORM"], images.map((i) => [i.id, i.name, i.platform])));
    }
  });
}

function parseState(value: string): ServerState {
  const state = ServerState[`SERVER_STATE_${value.toUpperCase()}` as keyof typeof ServerState];
  if (state === undefined || state === ServerState.SERVER_STATE_UNSPECIFIED) throw new CommanderInvalidArgument("one of pending, running, stopping, stopped, rebooting, terminating, terminated");
  return state;
}

function parseAgentState(value: string): AgentState {
  const state = AgentState[`AGENT_STATE_${value.toUpperCase()}` as keyof typeof AgentState];
  if (state === undefined || state === AgentState.AGENT_STATE_UNSPECIFIED) throw new CommanderInvalidArgument("one of none, pending, connected, unreachable");
  return state;
}

/** --tag k=v, repeated: the map so far with this pair added. */
export function parseTag(value: string, previous: Record<string, string> | undefined): Record<string, string> {
  const at = value.indexOf("=");
  if (at < 1) throw new CommanderInvalidArgument("key=value (the key not empty)");
  return { ...(previous ?? {}), [value.slice(0, at)]: value.slice(at + 1) };
}

/** A repeated option's values, in order. */
export const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

/**
 * `servers launch --address <id>` names a static address, while `servers --address <host:port>` (before the
 * subcommand) or `-a` names the dispatcher; commander hands every --address to the group, so the command line is read
 * again here to tell them apart.
 */
export function splitAddressArgs(raw: readonly string[]): { dispatcher?: string; staticAddress?: string } {
  const out: { dispatcher?: string; staticAddress?: string } = {};
  let inLaunch = false;
  for (let i = 0; i < raw.length; i++) {
    const tok = raw[i] ?? "";
    if (tok === "--") break;
    if (tok === "launch") inLaunch = true;
    let value: string | undefined;
    let long = false;
    if (tok === "--address" || tok === "-a") {
      value = raw[i + 1];
      long = tok === "--address";
      i++;
    } else if (tok.startsWith("--address=")) {
      value = tok.slice("--address=".length);
      long = true;
    }
    if (value === undefined) continue;
    if (inLaunch && long) out.staticAddress = value;
    else out.dispatcher = value;
  }
  return out;
}

function parseLimit(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw new CommanderInvalidArgument("an integer from 1 to 1000");
  return n;
}

/** Adds `dispatcher servers …` to the program (to the `servers` group when another module made it first). */
export function addServerCommands(program: Command, configFile: () => string | undefined, setExit: (code: number) => void): void {
  const servers =
    program.commands.find((c) => c.name() === "servers") ??
    program.command("servers").description("servers through the dispatcher API (client.address, client.token)").option("-a, --address <host:port>", "dispatcher to call (default: client.address)");
  const common = (cmd: Command): ServerCommandOptions => ({
    configFile: configFile(),
    address: servers.opts<{ address?: string }>().address,
    json: cmd.opts<{ json?: boolean }>().json,
    wait: cmd.opts<{ wait?: boolean }>().wait,
  });

  servers
    .command("list")
    .alias("ls")
    .description("servers in your accounts, oldest first")
    .option("--account <id|name>", "only this account's")
    .option("--region <id>", "only this region's")
    .option("--state <state>", "pending, running, stopping, stopped, rebooting, terminating or terminated", parseState)
    .option("--budget-code <code>", "only those billed to this code")
    .option("--agent <state>", "only those whose agent is none, pending, connected or unreachable", parseAgentState)
    .option("--tag <key=value>", "only those with this tag (repeat for several: all must match)", parseTag)
    .option("-n, --limit <n>", "servers per page (1–1000)", parseLimit, 50)
    .option("--page-token <token>", "continue a previous listing")
    .option("--all", "fetch every page", false)
    .option("--json", "one JSON object instead of a table", false)
    .action(async (opts: Omit<ListServersOptions, keyof ServerCommandOptions>, cmd: Command) => setExit(await runServersList({ ...common(cmd), ...opts })));

  servers
    .command("get <id>")
    .description("one server as last observed")
    .option("--json", "JSON instead of text", false)
    .action(async (id: string, _opts: unknown, cmd: Command) => setExit(await runServersGet(id, common(cmd))));

  servers
    .command("events <id>")
    .description("a server's history, oldest first")
    .option("--json", "JSON instead of a table", false)
    .action(async (id: string, _opts: unknown, cmd: Command) => setExit(await runServersEvents(id, common(cmd))));

  servers
    .command("launch")
    .description("launch a server (a server.launch job, done when the server is seen running)")
    .requiredOption("--account <id|name>", "account to launch in (its id, or its name where one visible account has it, e.g. local)")
    .requiredOption("--region <id>", "region (see `servers products`)")
    .requiredOption("--product <id>", "product (size)")
    .requiredOption("--image <id>", "image")
    .option("--data-center <name>", "data center (default: the region's first)")
    .option("--name <name>", "server name")
    .option("--budget-code <code>", "budget code to bill (default: the account's)")
    .option("-k, --idempotency-key <key>", "the same key again returns the same server and job")
    .option("--firewall <id>", "a firewall to put the server in (repeat for several; default: the cloud's)", collect)
    .option("--key <id>", "a key pair whose public key the guest's login user gets")
    .option("--user-data-file <path>", "a script the guest runs once at first boot (at most 12 KiB; - for standard input)")
    .option("--address <id>", "a static address (ALLOCATED) to associate once the server runs; the job is done when it is")
    .option("--tag <key=value>", "a tag for the server (repeat for several)", parseTag)
    .option("--volume <device=id|device=GiB[:type]>", "attach an existing volume, or a new one of that size, once the server runs (repeatable)", parseVolume)
    .option("-w, --wait", "follow the job to its end; exit 0 only when the server runs", false)
    .option("--json", "JSON instead of text (with --wait: a line per update)", false)
    .action(async (opts: Omit<LaunchOptions, keyof ServerCommandOptions>, cmd: Command) => {
      // Commander gives every --address to the group: read the command line again to tell which is which.
      // rawArgs: what commander was asked to parse (typed in commander's JavaScript only).
      const split = splitAddressArgs((program as unknown as { rawArgs?: string[] }).rawArgs ?? process.argv);
      const base = common(cmd);
      const address = split.dispatcher ?? (split.staticAddress === undefined ? base.address : undefined);
      setExit(await runServersLaunch({ ...base, address, ...opts, staticAddress: split.staticAddress }));
    });

  servers
    .command("firewalls <id>")
    .description("put a server in exactly these firewalls (a server.set_firewalls job, done when the cloud shows it)")
    .requiredOption("--firewall <id>", "a firewall (repeat for several)", collect)
    .option("-k, --idempotency-key <key>", "the same key again returns the same job")
    .option("-w, --wait", "follow the job to its end; exit 0 only when it succeeded", false)
    .option("--json", "JSON instead of text", false)
    .action(async (id: string, opts: { firewall: string[]; idempotencyKey?: string }, cmd: Command) => setExit(await runServerFirewalls(id, { ...common(cmd), ...opts })));

  servers
    .command("tag <id>")
    .description("set and remove a server's tags on its cloud (a server.tag job, done when the cloud shows them)")
    .option("--set <key=value>", "a tag to add or overwrite (repeat for several)", parseTag)
    .option("--remove <key>", "a tag to remove (repeat for several)", collect)
    .option("-k, --idempotency-key <key>", "the same key again returns the same job")
    .option("-w, --wait", "follow the job to its end; exit 0 only when it succeeded", false)
    .option("--json", "JSON instead of text", false)
    .action(async (id: string, opts: { set?: Record<string, string>; remove?: string[]; idempotencyKey?: string }, cmd: Command) => setExit(await runServerTags(id, { ...common(cmd), ...opts })));

  for (const [action, description] of [
    ["start", "start a stopped server"],
    ["stop", "stop a running server"],
    ["reboot", "reboot a running server (done when a new boot is seen)"],
    ["terminate", "terminate a server (done when the cloud no longer runs it)"],
  ] as const) {
    servers
      .command(`${action} <id>`)
      .description(description)
      .option("-k, --idempotency-key <key>", "the same key again returns the same job")
      .option("-w, --wait", "follow the job to its end; exit 0 only when it succeeded", false)
      .option("--json", "JSON instead of text", false)
      .action(async (id: string, opts: { idempotencyKey?: string }, cmd: Command) => setExit(await runServerAction(action, id, { ...common(cmd), idempotencyKey: opts.idempotencyKey })));
  }

  for (const what of ["products", "images"] as const) {
    servers
      .command(what)
      .description(`the ${what} an account can launch in a region, as last discovered`)
      .requiredOption("--account <id|name>", "account (id or name)")
      .requiredOption("--region <id>", "region")
      .option("--json", "JSON instead of a table", false)
      .action(async (opts: { account: string; region: string }, cmd: Command) => setExit(await runCatalog(what, { ...common(cmd), ...opts })));
  }
}
