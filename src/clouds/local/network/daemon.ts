// The local cloud's forwarder: one process per account directory (`node --import tsx daemon.ts <accountDir>`),
// started by the driver when a server needs it. It listens on each server's addresses at the server's port — only on
// ports some firewall rule opens — judges every connection by the server's firewall rules (source address, port,
// protocol) and pipes the admitted ones to the guest's own address; the rest are reset before the guest sees them.
// It re-reads the records whenever the generation counter moves (and every few seconds, which also notices a guest
// that died), acknowledges each generation it applied, and exits once it has had nothing to serve for a while or its
// directory is gone. Plain user-space sockets: no root needed.
import { existsSync, readFileSync, rmSync, statSync } from "node:fs";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { admits } from "../../firewall-rules.js";
import { processStart } from "../processes.js";
import { networkDir, planNetwork, readGeneration, writeApplied, type Applied, type Plan } from "./plan.js";

const POLL_MS = 50;
/** Everything is read again this often even when nothing was published (a failed listener is retried). */
const FULL_RELOAD_MS = 5_000;
const IDLE_EXIT_MS = Number(process.env.DISPATCHER_LOCAL_NETWORK_IDLE_MS ?? 30_000);
const EMPTY: ReadonlySet<string> = new Set();

const accountDir = process.argv[2] ?? "";
const daemonFile = join(networkDir(accountDir), "daemon.json");
const me = { pid: process.pid, start: processStart(process.pid) };

let plan: Plan = { listeners: new Map(), rulesOf: new Map(), members: new Map() };
const open = new Map<string, Server>();
let stopping = false;

function log(message: string): void {
  console.log(`${new Date().toISOString()} ${message}`);
}

/** Whether daemon.json (written by whoever spawned this process) names this process. */
function owned(): boolean {
  try {
    const d = JSON.parse(readFileSync(daemonFile, "utf8")) as { pid?: number; start?: string | null };
    return d.pid === me.pid && (d.start ?? null) === me.start;
  } catch {
    return false;
  }
}

function onConnection(key: string, socket: Socket): void {
  const l = plan.listeners.get(key);
  const source = socket.remoteAddress ?? "";
  if (!l || !admits(plan.rulesOf.get(l.serverId) ?? [], { protocol: "TCP", port: l.port, source }, (fw) => plan.members.get(fw) ?? EMPTY)) {
    socket.resetAndDestroy();
    return;
  }
  const upstream = createConnection({ host: l.backend, port: l.port });
  let connected = false;
  upstream.once("connect", () => {
    connected = true;
    socket.pipe(upstream);
    upstream.pipe(socket);
  });
  // A guest that is not listening (stopped, booting) refuses: so does its address.
  upstream.once("error", () => (connected ? socket.destroy() : socket.resetAndDestroy()));
  socket.once("error", () => upstream.destroy());
  socket.once("close", () => upstream.destroy());
}

function listen(key: string, ip: string, port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer({ pauseOnConnect: false }, (socket) => onConnection(key, socket));
    server.once("error", reject);
    server.listen({ host: ip, port, exclusive: true }, () => {
      server.off("error", reject);
      server.on("error", (err) => log(`listener ${key} failed: ${err.message}`));
      resolve(server);
    });
  });
}

async function apply(generation: number): Promise<void> {
  plan = planNetwork(accountDir);
  const failures: Applied["failures"] = [];
  for (const [key, l] of plan.listeners) {
    if (open.has(key)) continue;
    try {
      open.set(key, await listen(key, l.ip, l.port));
      log(`listening on ${key} for ${l.serverId}`);
    } catch (err) {
      failures.push({ listener: key, serverId: l.serverId, code: (err as NodeJS.ErrnoException).code ?? "ERROR" });
    }
  }
  for (const [key, server] of open) {
    if (plan.listeners.has(key)) continue;
    // Stops accepting at once; connections already admitted run on, as a stateful firewall's tracked ones do.
    server.close();
    open.delete(key);
    log(`closed ${key}`);
  }
  writeApplied(accountDir, { generation, pid: process.pid, at: new Date().toISOString(), failures });
}

function stamp(): string {
  try {
    const s = statSync(join(networkDir(accountDir), "generation"));
    return `${s.mtimeMs}:${s.ino}:${s.size}`;
  } catch {
    return "none";
  }
}

async function main(): Promise<void> {
  // The spawner names this process in daemon.json right after spawning it; a process it does not name is a loser of a
  // race (or a leftover) and goes away.
  const claimedBy = Date.now() + 5_000;
  while (!owned()) {
    if (Date.now() > claimedBy) return;
    await sleep(20);
  }
  log(`forwarder for ${accountDir} started (pid ${process.pid})`);
  let seen = "";
  let lastFull = 0;
  let idleSince = Date.now();
  let checks = 0;
  while (!stopping) {
    // The account's directory removed (its data directory deleted): nothing is left to serve.
    if (!existsSync(networkDir(accountDir))) break;
    const now = stamp();
    if (now !== seen || Date.now() - lastFull > FULL_RELOAD_MS) {
      // The generation is read before the records, so everything published up to it is in what is applied.
      seen = now;
      lastFull = Date.now();
      await apply(readGeneration(accountDir));
    }
    if (open.size > 0 || plan.listeners.size > 0) idleSince = Date.now();
    else if (Date.now() - idleSince > IDLE_EXIT_MS) break;
    if (++checks % 20 === 0 && !owned()) {
      log("superseded by another forwarder");
      stopping = true;
      break;
    }
    await sleep(POLL_MS);
  }
  await shutdown();
}

async function shutdown(): Promise<void> {
  stopping = true;
  for (const server of open.values()) server.close();
  open.clear();
  if (owned()) rmSync(daemonFile, { force: true });
  log("forwarder stopped");
}

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.once(signal, () => {
    void shutdown().then(() => process.exit(0));
  });
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    log(`forwarder failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
