// Test support for NATS: a JetStream stream of this run on the shared server, a private nats-server for fault tests,
// and a logger whose lines a test can read.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { inject } from "vitest";
import { loadConfig } from "../../src/config.js";
import { createLogger, type Logger } from "../../src/log.js";
import { freePort, waitForPort } from "../support/net.js";

export { freePort };

export const sharedNatsUrl = (): string => loadConfig(process.env, "").mq.url;

/** A stream name unique to this run and call; global-setup deletes leftovers by the run id. */
export function testStreamName(label: string): string {
  return `T_${inject("runId")}_${label.replace(/[^A-Za-z0-9]/g, "_")}_${randomBytes(3).toString("hex")}`;
}

/** A subject prefix unique to this run and call, so a stream left by another run never overlaps this one's. */
export function testSubjectPrefix(label: string): string {
  return `t_${inject("runId")}_${label.replace(/[^A-Za-z0-9]/g, "_")}_${randomBytes(3).toString("hex")}`;
}

export interface TestJetStream {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  close(): Promise<void>;
}

export async function openJetStream(): Promise<TestJetStream> {
  const nc = await connect({ servers: sharedNatsUrl(), timeout: 5_000 });
  const jsm = await jetstreamManager(nc);
  return { nc, js: jetstream(nc), jsm, close: () => nc.close() };
}

/** Deletes a stream, ignoring one that is already gone. */
export async function deleteStream(jsm: JetStreamManager, name: string): Promise<void> {
  await jsm.streams.delete(name).catch(() => false);
}

export interface LogLine {
  level: string;
  msg: string;
  [key: string]: unknown;
}

/** A logger at `level` whose lines are parsed into `lines`. */
export function captureLogger(level = "debug"): { log: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split("\n")) if (l) lines.push(JSON.parse(l) as LogLine);
      done();
    },
  });
  return { log: createLogger({ level, destination }), lines };
}

export interface PrivateNats {
  url: string;
  port: number;
  process: ChildProcess;
  /** SIGKILLs the server and waits for it to exit. */
  kill(): Promise<void>;
  /** Starts it again on the same port (and store directory). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts a nats-server of its own on a free port (with JetStream in a temporary store unless `jetstream` is false). */
export async function startPrivateNats(options: { jetstream?: boolean } = {}): Promise<PrivateNats> {
  const port = await freePort();
  const storeDir = mkdtempSync(join(tmpdir(), "nats-"));
  const args = ["-a", "127.0.0.1", "-p", String(port), ...(options.jetstream === false ? [] : ["-js", "-sd", storeDir])];
  const launch = async () => {
    const child = spawn("/usr/sbin/nats-server", args, { stdio: "ignore" });
    await waitForPort(port, 5_000, "nats-server");
    return child;
  };
  const handle: PrivateNats = {
    url: `nats://127.0.0.1:${port}`,
    port,
    process: await launch(),
    async kill() {
      const p = handle.process;
      if (p.exitCode !== null || p.signalCode !== null) return;
      const exited = new Promise((r) => p.once("exit", r));
      p.kill("SIGKILL");
      await exited;
    },
    async restart() {
      handle.process = await launch();
    },
    async stop() {
      await handle.kill();
      rmSync(storeDir, { recursive: true, force: true });
    },
  };
  return handle;
}
