// A private MariaDB Galera cluster for tests and the chaos script: N mariadbd processes (default 3) with their own data
// directories and ports, replicating through Debian's galera-4 provider. The first node bootstraps the cluster
// (--wsrep-new-cluster), the others join it one at a time by a state transfer (mysqldump by default: on a busy
// two-core machine it formed a cluster in about half the time rsync's took, 16 s against 30 s). A node can be
// SIGKILLed, paused, and restarted: it rejoins with an incremental transfer from the others' gcache, or a full one.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { openConnection } from "../../src/db/connect.js";
import { GiveUp, poll } from "./daemon.js";
import { PrivateMariadb } from "./mariadb.js";
import { freePorts } from "./net.js";

export const GALERA_PROVIDER = "/usr/lib/galera/libgalera_smm.so";

export interface GaleraOptions {
  /** Nodes (default 3). */
  size?: number;
  /** Names the cluster and the temporary directories. */
  label?: string;
  /**
   * More wsrep_provider_options, ";"-separated, e.g. "evs.suspect_timeout=PT2S;evs.inactive_timeout=PT4S" to notice a
   * dead node sooner than Galera's defaults (5 s and 15 s).
   */
  providerOptions?: string;
  /** More mariadbd options for every node. */
  args?: readonly string[];
  /** How a joiner gets the data (wsrep_sst_method): default mysqldump when the binary is installed, else rsync. */
  sst?: "mysqldump" | "rsync";
  /** How long the cluster may take to form (default 60 s). */
  timeoutMs?: number;
}

export interface WsrepStatus {
  /** wsrep_cluster_size as this node sees it. */
  size: number;
  /** wsrep_local_state_comment: Synced, Joining, Donor/Desynced, … */
  state: string;
  /** wsrep_ready: whether the node takes queries. */
  ready: boolean;
  /** wsrep_cluster_status: Primary, or non-Primary when this node lost quorum. */
  primary: boolean;
}

/** One node: a PrivateMariadb with its Galera ports. */
export class GaleraNode {
  constructor(
    readonly index: number,
    readonly server: PrivateMariadb,
    readonly groupPort: number,
  ) {}

  get name(): string {
    return this.server.name;
  }

  get port(): number {
    return this.server.port;
  }

  get running(): boolean {
    return this.server.running;
  }

  url(database = ""): string {
    return this.server.url(database);
  }

  async status(): Promise<WsrepStatus> {
    const conn = await openConnection(this.url(), false);
    try {
      const rows = (await conn.query("SHOW STATUS WHERE Variable_name IN ('wsrep_cluster_size', 'wsrep_local_state_comment', 'wsrep_ready', 'wsrep_cluster_status')")) as { Variable_name: string; Value: string }[];
      const v = Object.fromEntries(rows.map((r) => [r.Variable_name, r.Value]));
      return { size: Number(v.wsrep_cluster_size ?? 0), state: v.wsrep_local_state_comment ?? "", ready: v.wsrep_ready === "ON", primary: v.wsrep_cluster_status === "Primary" };
    } finally {
      await conn.end().catch(() => undefined);
    }
  }

  /** Resolves once this node is Synced, ready and in a primary component of `size` nodes. */
  async waitSynced(size: number, timeoutMs = 60_000): Promise<void> {
    let last: WsrepStatus | undefined;
    await poll(
      async () => {
        if (!this.server.running) throw new GiveUp(`${this.name} exited`);
        last = await this.status();
        return last.ready && last.primary && last.state === "Synced" && last.size === size;
      },
      timeoutMs,
      `${this.name} to be Synced in a cluster of ${size}`,
      200,
    ).catch((err: unknown) => {
      throw new Error(`${err instanceof Error ? err.message : String(err)}; last status ${JSON.stringify(last)}\n--- ${this.server.logFile}\n${this.server.daemon.tail(40)}`);
    });
  }

  /** SIGKILL: the others evict it once it has been silent for evs.suspect_timeout. */
  kill(): Promise<void> {
    return this.server.kill();
  }

  /** SIGSTOP / SIGCONT: a node that hangs without closing its connections. */
  pause(): void {
    this.server.daemon.signal("SIGSTOP");
  }

  resume(): void {
    this.server.daemon.signal("SIGCONT");
  }

  /**
   * Starts the node again; it rejoins the running nodes. With `bootstrap` (every node is down) it starts a new
   * cluster from its own data instead, which Galera allows only after marking the node safe to bootstrap.
   */
  async restart(options: { bootstrap?: boolean } = {}): Promise<void> {
    if (options.bootstrap) {
      const file = join(this.server.dataDir, "grastate.dat");
      if (existsSync(file)) writeFileSync(file, readFileSync(file, "utf8").replace(/safe_to_bootstrap: 0/, "safe_to_bootstrap: 1"));
    }
    await this.server.restart(options.bootstrap ? ["--wsrep-new-cluster"] : [], 0);
  }
}

export interface GaleraCluster {
  nodes: GaleraNode[];
  /** The cluster's name (wsrep_cluster_name). */
  name: string;
  /** Resolves once every running node is Synced in a cluster of that many. */
  waitSynced(timeoutMs?: number): Promise<void>;
  /** Stops every node (SIGTERM) and removes their directories. */
  stop(): Promise<void>;
}

/** Whether this machine can run the harness; the reason when it cannot. */
export function galeraUnavailable(sst: "mysqldump" | "rsync" = defaultSst()): string | undefined {
  if (!existsSync(GALERA_PROVIDER)) return `the Galera provider ${GALERA_PROVIDER} is missing (apt-get install -y galera-4)`;
  if (!existsSync(`/usr/bin/wsrep_sst_${sst}`)) return `wsrep_sst_${sst} is missing (it comes with mariadb-server)`;
  if (sst === "rsync" && !existsSync("/usr/bin/rsync")) return "rsync is missing: the rsync state transfer needs it (apt-get install -y rsync)";
  if (sst === "mysqldump" && !existsSync("/usr/bin/mysqldump")) return "mysqldump is missing: the mysqldump state transfer needs it (apt-get install -y mariadb-client)";
  return undefined;
}

function defaultSst(): "mysqldump" | "rsync" {
  return existsSync("/usr/bin/mysqldump") ? "mysqldump" : "rsync";
}

/** Starts a private Galera cluster and waits until every node is Synced. */
export async function startGaleraCluster(options: GaleraOptions = {}): Promise<GaleraCluster> {
  const sst = options.sst ?? defaultSst();
  const why = galeraUnavailable(sst);
  if (why) throw new Error(`cannot start a Galera cluster: ${why}`);
  const size = options.size ?? 3;
  const label = (options.label ?? "galera").replace(/[^A-Za-z0-9]/g, "").slice(0, 10) || "galera";
  const name = `${label}_${process.pid}_${Date.now().toString(36)}`;
  // Per node: SQL, group communication, incremental transfer, state transfer.
  const ports = await freePorts(size * 4);
  const at = (i: number, k: number): number => ports[i * 4 + k] as number;
  const members = Array.from({ length: size }, (_, i) => `127.0.0.1:${at(i, 1)}`).join(",");
  const wsrepArgs = (i: number): string[] => [
    "--binlog-format=ROW",
    "--default-storage-engine=InnoDB",
    "--innodb-autoinc-lock-mode=2",
    "--wsrep-on=ON",
    `--wsrep-provider=${GALERA_PROVIDER}`,
    `--wsrep-cluster-name=${name}`,
    `--wsrep-cluster-address=gcomm://${members}`,
    `--wsrep-node-address=127.0.0.1:${at(i, 1)}`,
    `--wsrep-node-name=${label}${i + 1}`,
    `--wsrep-provider-options=gmcast.listen_addr=tcp://127.0.0.1:${at(i, 1)};ist.recv_addr=127.0.0.1:${at(i, 2)};gcache.size=64M${options.providerOptions ? `;${options.providerOptions}` : ""}`,
    `--wsrep-sst-method=${sst}`,
    // mysqldump pipes the donor's dump into the joiner's running server (as root, whose password is empty here);
    // rsync sends files to a daemon the joiner starts on a port of its own.
    ...(sst === "mysqldump" ? ["--wsrep-sst-auth=root:", `--wsrep-sst-receive-address=127.0.0.1:${at(i, 0)}`] : [`--wsrep-sst-receive-address=127.0.0.1:${at(i, 3)}`]),
  ];
  const nodes: GaleraNode[] = [];
  const cluster: GaleraCluster = {
    nodes,
    name,
    async waitSynced(timeoutMs = options.timeoutMs ?? 60_000) {
      const up = nodes.filter((n) => n.running);
      await Promise.all(up.map((n) => n.waitSynced(up.length, timeoutMs)));
    },
    async stop() {
      await Promise.allSettled(nodes.map((n) => n.server.stop()));
    },
  };
  const timeoutMs = options.timeoutMs ?? 60_000;
  try {
    for (let i = 0; i < size; i++) {
      const server = await PrivateMariadb.start({
        label: `${label}${i + 1}`,
        port: at(i, 0),
        argsFor: () => wsrepArgs(i),
        args: options.args ?? [],
        once: i === 0 ? ["--wsrep-new-cluster"] : [],
        wait: false,
      });
      const node = new GaleraNode(i + 1, server, at(i, 1));
      nodes.push(node);
      // One node at a time: the first must be primary before anyone can join it, and two joiners at once on a busy
      // machine can miss the view install between them; the one left out gives up (pc.wait_prim_timeout, 30 s)
      // and exits. A joiner that exited before it was synced is started again, as an operator would.
      await joinWithRetry(node, i + 1, timeoutMs);
    }
    await cluster.waitSynced();
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}

/** What joinWithRetry needs of a node. */
export interface Joiner {
  readonly running: boolean;
  waitSynced(size: number, timeoutMs: number): Promise<unknown>;
  readonly server: { restart(extra: readonly string[], readyTimeoutMs: number): Promise<unknown> };
}

/** Waits for a starting node to be Synced among `size`; a joiner that exits first is started again (twice at most). */
export async function joinWithRetry(node: Joiner, size: number, timeoutMs: number): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await node.waitSynced(size, timeoutMs);
      return;
    } catch (err) {
      if (node.running || size === 1 || attempt > 2) throw err;
      await node.server.restart([], 0);
    }
  }
}
