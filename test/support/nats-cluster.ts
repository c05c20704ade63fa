// A private JetStream cluster for tests and the chaos script: N nats-server processes (default 3) on free ports,
// routed to each other, each with its own store directory and a monitoring port. A node can be SIGKILLed, paused and
// restarted with its store, as an operator's node comes back with its disk.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Daemon, GiveUp, poll } from "./daemon.js";
import { freePorts, waitForPort } from "./net.js";

export const NATS_SERVER = "/usr/sbin/nats-server";

export interface NatsClusterOptions {
  /** Nodes (default 3). */
  size?: number;
  /** Names the cluster, its servers and the temporary directory. */
  label?: string;
  /** How long the cluster may take to form and elect a JetStream meta leader (default 30 s). */
  timeoutMs?: number;
}

/** One nats-server of the cluster. */
export class NatsNode {
  daemon: Daemon;

  constructor(
    readonly name: string,
    readonly port: number,
    readonly routePort: number,
    readonly monitorPort: number,
    readonly storeDir: string,
    private readonly args: string[],
    readonly logFile: string,
  ) {
    this.daemon = new Daemon(name, NATS_SERVER, args, logFile);
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.daemon.running;
  }

  /** A monitoring endpoint's JSON (varz, routez, jsz, …). */
  async monitor<T = Record<string, unknown>>(endpoint: string): Promise<T> {
    const res = await fetch(`http://127.0.0.1:${this.monitorPort}/${endpoint}`, { signal: AbortSignal.timeout(2_000) });
    if (!res.ok) throw new Error(`${this.name} /${endpoint}: HTTP ${res.status}`);
    return (await res.json()) as T;
  }

  /** SIGKILL: nothing is flushed; JetStream recovers its store at the next start. */
  kill(): Promise<void> {
    return this.daemon.kill();
  }

  /** SIGSTOP / SIGCONT: a node that hangs with its connections open. */
  pause(): void {
    this.daemon.signal("SIGSTOP");
  }

  resume(): void {
    this.daemon.signal("SIGCONT");
  }

  /** Starts the server again with the same ports and store; resolves once it listens. */
  async restart(timeoutMs = 10_000): Promise<void> {
    if (this.daemon.running) throw new Error(`${this.name} is still running`);
    this.daemon = new Daemon(this.name, NATS_SERVER, this.args, this.logFile);
    await waitForPort(this.port, timeoutMs, this.name, () => this.daemon.running);
  }
}

export interface NatsCluster {
  nodes: NatsNode[];
  /** Every node's client URL, comma separated: the value of mq.url for a process that should survive a node. */
  urls: string;
  /** Resolves once every running node has its routes and sees a JetStream meta leader. */
  waitReady(timeoutMs?: number): Promise<void>;
  /** Kills every node and removes the store directories. */
  stop(): Promise<void>;
}

interface Routez {
  num_routes: number;
}
interface Jsz {
  meta_cluster?: { leader?: string; cluster_size?: number };
}

/** Starts a private JetStream cluster and waits until it has formed and elected a meta leader. */
export async function startNatsCluster(options: NatsClusterOptions = {}): Promise<NatsCluster> {
  const size = options.size ?? 3;
  const label = (options.label ?? "js").replace(/[^A-Za-z0-9]/g, "").slice(0, 12) || "js";
  const dir = mkdtempSync(join(tmpdir(), `nats-${label}-`));
  const ports = await freePorts(size * 3);
  const at = (i: number, k: number): number => ports[i * 3 + k] as number;
  const routes = Array.from({ length: size }, (_, i) => `nats://127.0.0.1:${at(i, 1)}`).join(",");
  const clusterName = `${label}_${process.pid}`;
  const nodes: NatsNode[] = [];
  for (let i = 0; i < size; i++) {
    const name = `${label}${i + 1}`;
    const storeDir = join(dir, name);
    mkdirSync(storeDir);
    const args = [
      "-a", "127.0.0.1", "-p", String(at(i, 0)), "-m", String(at(i, 2)),
      "--server_name", name, "--cluster_name", clusterName,
      "--cluster", `nats://127.0.0.1:${at(i, 1)}`, "--routes", routes,
      "-js", "-sd", storeDir,
    ];
    nodes.push(new NatsNode(name, at(i, 0), at(i, 1), at(i, 2), storeDir, args, join(dir, `${name}.log`)));
  }
  const cluster: NatsCluster = {
    nodes,
    urls: nodes.map((n) => n.url).join(","),
    async waitReady(timeoutMs = options.timeoutMs ?? 30_000) {
      const up = nodes.filter((n) => n.running);
      await Promise.all(
        up.map((n) =>
          poll(
            async () => {
              if (!n.running) throw new GiveUp(`${n.name} exited`);
              const [routez, jsz] = await Promise.all([n.monitor<Routez>("routez"), n.monitor<Jsz>("jsz")]);
              return routez.num_routes >= up.length - 1 && Boolean(jsz.meta_cluster?.leader);
            },
            timeoutMs,
            `${n.name} to route to ${up.length - 1} others and see a JetStream meta leader`,
            100,
          ).catch((err: unknown) => {
            throw new Error(`${err instanceof Error ? err.message : String(err)}\n--- ${n.logFile}\n${n.daemon.tail()}`);
          }),
        ),
      );
    },
    async stop() {
      await Promise.allSettled(nodes.map((n) => n.kill()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await Promise.all(nodes.map((n) => waitForPort(n.port, 10_000, n.name, () => n.running)));
    await cluster.waitReady();
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}
