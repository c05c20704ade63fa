// `dispatcher firewalls|addresses|keys …`: the network side of an account's cloud through the dispatcher's API
// (client.address, client.token). Every change is a job: the command prints it, and with --wait follows it to its end
// and exits 0 only when it succeeded. A created key pair's private key is printed once (or written to --out, mode
// 0600) and kept nowhere.
import { writeFileSync } from "node:fs";
import { InvalidArgumentError as CommanderInvalidArgument, type Command } from "commander";
import type { DispatcherClients } from "../client/index.js";
import type { Job } from "../gen/proto/dispatcher/v1/jobs.js";
import { Address, Firewall, type FirewallRule, KeyPair, KeyType, ResourceEvent, type ResourceInfo, RuleDirection, RuleProtocol } from "../gen/proto/dispatcher/v1/network.js";
import { accountIdOf, fields, json, optionalAccountIdOf, table, time, withClient, type ClientCommandOptions, type CommandIo } from "./client-command.js";
import { reportJob } from "./job-follow.js";
import { collect, parseTag, type ServerCommandOptions } from "./servers.js";

type Kind = "firewall" | "address" | "key";
type Opts = ServerCommandOptions & { idempotencyKey?: string | undefined };

const tagsText = (t: Record<string, string>): string => Object.entries(t).map(([k, v]) => `${k}=${v}`).join(",") || "-";

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
    ["tags", tagsText(i.tags)],
    ["created", time(i.createTime)],
  ];
}

export function ruleText(r: FirewallRule): string {
  const dir = r.direction === RuleDirection.RULE_DIRECTION_EGRESS ? "egress" : "ingress";
  const proto = ({ [RuleProtocol.RULE_PROTOCOL_TCP]: "tcp", [RuleProtocol.RULE_PROTOCOL_UDP]: "udp", [RuleProtocol.RULE_PROTOCOL_ICMP]: "icmp", [RuleProtocol.RULE_PROTOCOL_ALL]: "all" } as Record<number, string>)[r.protocol] ?? "?";
  const ports = r.fromPort || r.toPort ? ` ${r.fromPort === r.toPort ? r.fromPort : `${r.fromPort}-${r.toPort}`}` : "";
  const peer = r.peer?.$case === "firewallId" ? `firewall ${r.peer.value}` : (r.peer?.value ?? "?");
  return `${dir} ${proto}${ports} ${dir === "ingress" ? "from" : "to"} ${peer}${r.description ? ` (${r.description})` : ""}`;
}

const PROTOCOLS: Record<string, RuleProtocol> = { tcp: RuleProtocol.RULE_PROTOCOL_TCP, udp: RuleProtocol.RULE_PROTOCOL_UDP, icmp: RuleProtocol.RULE_PROTOCOL_ICMP, all: RuleProtocol.RULE_PROTOCOL_ALL };

export interface RuleOptions {
  direction: string;
  protocol: string;
  port?: string | undefined;
  cidr?: string | undefined;
  sourceFirewall?: string | undefined;
  description?: string | undefined;
}

/** The rule of --direction --protocol --port N[-M] --cidr C | --source-firewall ID; the server checks the rest. */
export function ruleOf(o: RuleOptions): FirewallRule {
  const direction = o.direction === "egress" ? RuleDirection.RULE_DIRECTION_EGRESS : o.direction === "ingress" ? RuleDirection.RULE_DIRECTION_INGRESS : undefined;
  if (direction === undefined) throw new CommanderInvalidArgument("--direction: ingress or egress");
  const protocol = PROTOCOLS[o.protocol.toLowerCase()];
  if (protocol === undefined) throw new CommanderInvalidArgument("--protocol: tcp, udp, icmp or all");
  let fromPort = 0;
  let toPort = 0;
  if (o.port) {
    const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(o.port);
    if (!m) throw new CommanderInvalidArgument("--port: a port or a range, e.g. 22 or 8000-8100");
    fromPort = Number(m[1]);
    toPort = Number(m[2] ?? m[1]);
  }
  if (!!o.cidr === !!o.sourceFirewall) throw new CommanderInvalidArgument("name the peer with exactly one of --cidr or --source-firewall");
  const peer = o.cidr ? { $case: "cidr" as const, value: o.cidr } : { $case: "firewallId" as const, value: o.sourceFirewall ?? "" };
  return { direction, protocol, fromPort, toPort, peer, description: o.description ?? "" };
}

function describe(kind: Kind, m: Firewall | Address | KeyPair): string {
  const lines = infoLines(m.info);
  if (kind === "firewall") {
    const f = m as Firewall;
    lines.push(["description", f.description || "-"]);
    if (f.rules.length === 0) lines.push(["rules", "none"]);
    f.rules.forEach((r, i) => lines.push([`rule ${i + 1}`, ruleText(r)]));
  } else if (kind === "address") {
    const a = m as Address;
    lines.push(["ip", a.ip || "-"], ["server", a.serverId || a.serverProviderId || "-"]);
  } else {
    const k = m as KeyPair;
    lines.push(["key type", k.keyType || "-"], ["fingerprint", k.fingerprint || "-"]);
  }
  return fields(lines);
}

function rowOf(kind: Kind, m: Firewall | Address | KeyPair): string[] {
  const i = m.info;
  const base = [i?.id ?? "", i?.name ?? "", i?.state ?? "", i?.accountId ?? "", i?.regionId ?? "", i?.providerId || "-"];
  if (kind === "firewall") return [...base, String((m as Firewall).rules.length), tagsText(i?.tags ?? {})];
  if (kind === "address") return [...base, (m as Address).ip || "-", (m as Address).serverId || "-", tagsText(i?.tags ?? {})];
  return [...base, (m as KeyPair).fingerprint || "-", tagsText(i?.tags ?? {})];
}

const HEADERS: Record<Kind, string[]> = {
  firewall: ["ID", "NAME", "STATE", "ACCOUNT", "REGION", "PROVIDER ID", "RULES", "TAGS"],
  address: ["ID", "NAME", "STATE", "ACCOUNT", "REGION", "PROVIDER ID", "IP", "SERVER", "TAGS"],
  key: ["ID", "NAME", "STATE", "ACCOUNT", "REGION", "PROVIDER ID", "FINGERPRINT", "TAGS"],
};

const GROUP: Record<Kind, string> = { firewall: "firewalls", address: "addresses", key: "keys" };

const toJson = (kind: Kind, m: Firewall | Address | KeyPair): unknown => (kind === "firewall" ? Firewall.toJSON(m as Firewall) : kind === "address" ? Address.toJSON(m as Address) : KeyPair.toJSON(m as KeyPair));

async function getOne(c: DispatcherClients, kind: Kind, id: string): Promise<Firewall | Address | KeyPair | undefined> {
  if (kind === "firewall") return (await c.firewalls.getFirewall({ id })).firewall;
  if (kind === "address") return (await c.addresses.getAddress({ id })).address;
  return (await c.keyPairs.getKeyPair({ id })).keyPair;
}

interface ListOptions extends ClientCommandOptions {
  account?: string | undefined;
  region?: string | undefined;
  tag?: Record<string, string> | undefined;
  includeDeleted?: boolean | undefined;
}

async function listAll(c: DispatcherClients, kind: Kind, o: ListOptions): Promise<Array<Firewall | Address | KeyPair>> {
  const out: Array<Firewall | Address | KeyPair> = [];
  const accountId = await optionalAccountIdOf(c, o.account);
  let pageToken = "";
  do {
    const q = { pageSize: 500, pageToken, accountId, regionId: o.region ?? "", tags: o.tag ?? {}, includeDeleted: o.includeDeleted ?? false };
    const page = kind === "firewall" ? await c.firewalls.listFirewalls(q) : kind === "address" ? await c.addresses.listAddresses(q) : await c.keyPairs.listKeyPairs(q);
    out.push(...("firewalls" in page ? page.firewalls : "addresses" in page ? page.addresses : page.keyPairs));
    pageToken = page.nextPageToken;
  } while (pageToken);
  return out;
}

async function events(c: DispatcherClients, kind: Kind, id: string): Promise<ResourceEvent[]> {
  const out: ResourceEvent[] = [];
  let pageToken = "";
  do {
    const q = { id, pageSize: 1000, pageToken };
    const page = kind === "firewall" ? await c.firewalls.listFirewallEvents(q) : kind === "address" ? await c.addresses.listAddressEvents(q) : await c.keyPairs.listKeyPairEvents(q);
    out.push(...page.events);
    pageToken = page.nextPageToken;
  } while (pageToken);
  return out;
}

/** A created resource: its id first (for scripts: the last line of plain output is the job's). */
async function created(c: DispatcherClients, io: CommandIo, o: Opts, kind: Kind, job: Job | undefined, m: Firewall | Address | KeyPair | undefined): Promise<number> {
  if (m?.info && !o.json) io.out(`${kind} ${m.info.id} (${m.info.name}): ${m.info.state}\n`);
  const code = await reportJob(GROUP[kind], c, io, o, job, { [kind === "key" ? "keyPair" : kind]: m ? toJson(kind, m) : null }, "percent");
  if (code === 0 && o.wait && m?.info && !o.json) {
    const now = await getOne(c, kind, m.info.id);
    if (now) io.out(describe(kind, now));
  }
  return code;
}

/** Adds `dispatcher firewalls|addresses|keys …` to the program. */
export function addNetworkCommands(program: Command, configFile: () => string | undefined, setExit: (code: number) => void): void {
  for (const kind of ["firewall", "address", "key"] as const) {
    const name = GROUP[kind];
    const noun = kind === "key" ? "key pair" : kind === "address" ? "static address" : "firewall";
    const group = program
      .command(name)
      .description(`${noun}s of your accounts' clouds through the dispatcher API (client.address, client.token)`)
      .option("-a, --address <host:port>", "dispatcher to call (default: client.address)");
    const common = (cmd: Command): Opts => ({
      configFile: configFile(),
      address: group.opts<{ address?: string }>().address,
      json: cmd.opts<{ json?: boolean }>().json,
      wait: cmd.opts<{ wait?: boolean }>().wait,
      idempotencyKey: cmd.opts<{ idempotencyKey?: string }>().idempotencyKey,
    });
    const job = (cmd: Command): Command =>
      cmd
        .option("-k, --idempotency-key <key>", "the same key again returns the same job")
        .option("-w, --wait", "follow the job to its end; exit 0 only when it succeeded", false)
        .option("--json", "JSON instead of text", false);

    group
      .command("list")
      .alias("ls")
      .description(`${noun}s in your accounts`)
      .option("--account <id|name>", "only this account's")
      .option("--region <id>", "only this region's")
      .option("--tag <key=value>", "only those with this tag (repeat: all must match)", parseTag)
      .option("--include-deleted", "deleted ones too", false)
      .option("--json", "JSON instead of a table", false)
      .action(async (opts: ListOptions, cmd: Command) =>
        setExit(
          await withClient(`${name} list`, { ...common(cmd), ...opts }, async (c, io) => {
            const items = await listAll(c, kind, opts);
            io.out(opts.json ? json({ [name]: items.map((m) => toJson(kind, m)) }) : table(HEADERS[kind], items.map((m) => rowOf(kind, m))));
          }),
        ),
      );

    group
      .command("get <id>")
      .description(`one ${noun} as last observed`)
      .option("--json", "JSON instead of text", false)
      .action(async (id: string, _o: unknown, cmd: Command) =>
        setExit(
          await withClient(`${name} get`, common(cmd), async (c, io) => {
            const m = await getOne(c, kind, id);
            if (!m) return 1;
            io.out(common(cmd).json ? json(toJson(kind, m)) : describe(kind, m));
          }),
        ),
      );

    group
      .command("events <id>")
      .description(`a ${noun}'s history, oldest first`)
      .option("--json", "JSON instead of a table", false)
      .action(async (id: string, _o: unknown, cmd: Command) =>
        setExit(
          await withClient(`${name} events`, common(cmd), async (c, io) => {
            const list = await events(c, kind, id);
            io.out(common(cmd).json ? json({ events: list.map((e) => ResourceEvent.toJSON(e)) }) : table(["TIME", "TYPE", "STATE", "JOB", "MESSAGE"], list.map((e) => [time(e.createTime), e.type, e.toState ? `${e.fromState ? `${e.fromState} → ` : ""}${e.toState}` : "", e.jobId || "-", e.message])));
          }),
        ),
      );

    job(group.command("tag <id>").description(`set and remove tags of a ${noun} (a resource.tag job)`))
      .option("--set <key=value>", "a tag to add or overwrite (repeat for several)", parseTag)
      .option("--remove <key>", "a tag to remove (repeat for several)", collect)
      .action(async (id: string, opts: { set?: Record<string, string>; remove?: string[] }, cmd: Command) =>
        setExit(
          await withClient(`${name} tag`, common(cmd), async (c, io) => {
            const req = { id, change: { set: opts.set ?? {}, remove: opts.remove ?? [] }, idempotencyKey: common(cmd).idempotencyKey ?? "" };
            const r = kind === "firewall" ? await c.firewalls.setFirewallTags(req) : kind === "address" ? await c.addresses.setAddressTags(req) : await c.keyPairs.setKeyPairTags(req);
            return reportJob(`${name} tag`, c, io, common(cmd), r.job, {}, "percent");
          }),
        ),
      );

    job(group.command(`${kind === "address" ? "release" : "delete"} <id>`).description(kind === "address" ? "release a static address (disassociate it first)" : `delete a ${noun}`)).action(async (id: string, _o: unknown, cmd: Command) =>
      setExit(
        await withClient(`${name} ${kind === "address" ? "release" : "delete"}`, common(cmd), async (c, io) => {
          const req = { id, idempotencyKey: common(cmd).idempotencyKey ?? "" };
          const r = kind === "firewall" ? await c.firewalls.deleteFirewall(req) : kind === "address" ? await c.addresses.releaseAddress(req) : await c.keyPairs.deleteKeyPair(req);
          return reportJob(`${name} ${kind === "address" ? "release" : "delete"}`, c, io, common(cmd), r.job, {}, "percent");
        }),
      ),
    );
  }

  const group = (name: string): Command => program.commands.find((c) => c.name() === name) as Command;
  const opts = (cmd: Command, name: string): Opts => ({
    configFile: configFile(),
    address: group(name).opts<{ address?: string }>().address,
    json: cmd.opts<{ json?: boolean }>().json,
    wait: cmd.opts<{ wait?: boolean }>().wait,
    idempotencyKey: cmd.opts<{ idempotencyKey?: string }>().idempotencyKey,
  });
  const jobOptions = (cmd: Command): Command =>
    cmd
      .option("-k, --idempotency-key <key>", "the same key again returns the same job")
      .option("-w, --wait", "follow the job to its end; exit 0 only when it succeeded", false)
      .option("--json", "JSON instead of text", false);
  const placed = (cmd: Command): Command => cmd.requiredOption("--account <id|name>", "account (id or name)").requiredOption("--region <id>", "region").option("--name <name>", "name (default: made from the id)").option("--tag <key=value>", "a tag (repeat for several)", parseTag);
  type Placed = { account: string; region: string; name?: string; tag?: Record<string, string> };

  // ---- firewalls ----
  jobOptions(placed(group("firewalls").command("create").description("create a firewall (no rules: add them with add-rule)")))
    .option("--description <text>", "what it is for")
    .action(async (o: Placed & { description?: string }, cmd: Command) =>
      setExit(
        await withClient("firewalls create", opts(cmd, "firewalls"), async (c, io) => {
          const r = await c.firewalls.createFirewall({ accountId: await accountIdOf(c, o.account), regionId: o.region, name: o.name ?? "", description: o.description ?? "", tags: o.tag ?? {}, idempotencyKey: opts(cmd, "firewalls").idempotencyKey ?? "" });
          return created(c, io, opts(cmd, "firewalls"), "firewall", r.job, r.firewall);
        }),
      ),
    );
  for (const op of ["add-rule", "remove-rule"] as const) {
    jobOptions(
      group("firewalls")
        .command(`${op} <id>`)
        .description(op === "add-rule" ? "add a rule (done when the cloud shows it)" : "remove a rule (done when the cloud no longer shows it)")
        .option("--direction <dir>", "ingress or egress", "ingress")
        .requiredOption("--protocol <p>", "tcp, udp, icmp or all")
        .option("--port <n[-m]>", "a port or a range (tcp and udp)")
        .option("--cidr <cidr>", "the peer: addresses, e.g. 127.0.0.0/8")
        .option("--source-firewall <id>", "the peer: the servers in another firewall")
        .option("--description <text>", "what the rule is for"),
    ).action(async (id: string, o: RuleOptions, cmd: Command) =>
      setExit(
        await withClient(`firewalls ${op}`, opts(cmd, "firewalls"), async (c, io) => {
          const req = { id, rule: ruleOf(o), idempotencyKey: opts(cmd, "firewalls").idempotencyKey ?? "" };
          const r = op === "add-rule" ? await c.firewalls.addFirewallRule(req) : await c.firewalls.removeFirewallRule(req);
          return reportJob(`firewalls ${op}`, c, io, opts(cmd, "firewalls"), r.job, {}, "percent");
        }),
      ),
    );
  }

  // ---- static addresses ----
  jobOptions(placed(group("addresses").command("allocate").description("allocate a static address (it costs money while allocated: budget code and quota apply)")))
    .option("--budget-code <code>", "budget code to bill (default: the account's)")
    .action(async (o: Placed & { budgetCode?: string }, cmd: Command) =>
      setExit(
        await withClient("addresses allocate", opts(cmd, "addresses"), async (c, io) => {
          const r = await c.addresses.allocateAddress({ accountId: await accountIdOf(c, o.account), regionId: o.region, name: o.name ?? "", budgetCode: o.budgetCode ?? "", tags: o.tag ?? {}, idempotencyKey: opts(cmd, "addresses").idempotencyKey ?? "" });
          return created(c, io, opts(cmd, "addresses"), "address", r.job, r.address);
        }),
      ),
    );
  jobOptions(group("addresses").command("associate <id>").description("associate a static address with a running server").requiredOption("--server <id>", "the server")).action(async (id: string, o: { server: string }, cmd: Command) =>
    setExit(
      await withClient("addresses associate", opts(cmd, "addresses"), async (c, io) => {
        const r = await c.addresses.associateAddress({ id, serverId: o.server, idempotencyKey: opts(cmd, "addresses").idempotencyKey ?? "" });
        return reportJob("addresses associate", c, io, opts(cmd, "addresses"), r.job, {}, "percent");
      }),
    ),
  );
  jobOptions(group("addresses").command("disassociate <id>").description("take a static address off its server")).action(async (id: string, _o: unknown, cmd: Command) =>
    setExit(
      await withClient("addresses disassociate", opts(cmd, "addresses"), async (c, io) => {
        const r = await c.addresses.disassociateAddress({ id, idempotencyKey: opts(cmd, "addresses").idempotencyKey ?? "" });
        return reportJob("addresses disassociate", c, io, opts(cmd, "addresses"), r.job, {}, "percent");
      }),
    ),
  );

  // ---- key pairs ----
  jobOptions(placed(group("keys").command("import").description("register an OpenSSH public key")))
    .requiredOption("--public-key-file <path>", "the public key (e.g. ~/.ssh/id_ed25519.pub)")
    .action(async (o: Placed & { publicKeyFile: string }, cmd: Command) =>
      setExit(
        await withClient("keys import", opts(cmd, "keys"), async (c, io) => {
          const { readFileSync } = await import("node:fs");
          const publicKey = readFileSync(o.publicKeyFile, "utf8").trim();
          const r = await c.keyPairs.importKeyPair({ accountId: await accountIdOf(c, o.account), regionId: o.region, name: o.name ?? "", publicKey, tags: o.tag ?? {}, idempotencyKey: opts(cmd, "keys").idempotencyKey ?? "" });
          return created(c, io, opts(cmd, "keys"), "key", r.job, r.keyPair);
        }),
      ),
    );
  jobOptions(placed(group("keys").command("create").description("make a key pair; its private key is shown once (or written to --out) and kept nowhere")))
    .option("--type <type>", "ed25519 or rsa", "ed25519")
    .option("--out <path>", "write the private key to this file (mode 0600) instead of standard output")
    .action(async (o: Placed & { type: string; out?: string }, cmd: Command) =>
      setExit(
        await withClient("keys create", opts(cmd, "keys"), async (c, io) => {
          const keyType = o.type === "rsa" ? KeyType.KEY_TYPE_RSA : o.type === "ed25519" ? KeyType.KEY_TYPE_ED25519 : undefined;
          if (keyType === undefined) {
            io.err("dispatcher keys create: --type: ed25519 or rsa\n");
            return 2;
          }
          const r = await c.keyPairs.createKeyPair({ accountId: await accountIdOf(c, o.account), regionId: o.region, name: o.name ?? "", keyType, tags: o.tag ?? {}, idempotencyKey: opts(cmd, "keys").idempotencyKey ?? "" });
          if (r.privateKey && o.out) writeFileSync(o.out, r.privateKey, { mode: 0o600, flag: "wx" });
          else if (r.privateKey && opts(cmd, "keys").json) io.out(json({ privateKey: r.privateKey, publicKey: r.publicKey }));
          else if (r.privateKey) io.out(r.privateKey.endsWith("\n") ? r.privateKey : `${r.privateKey}\n`);
          else io.err("dispatcher keys create: this idempotency key was used before: its private key was shown then and is kept nowhere\n");
          return created(c, io, opts(cmd, "keys"), "key", r.job, r.keyPair);
        }),
      ),
    );
}
