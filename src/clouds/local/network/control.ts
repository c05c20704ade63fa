// The driver's side of the local cloud's forwarding: publishing a change (the next generation), starting the
// forwarder of the account when a server needs one (one process, named in network/daemon.json), and waiting until
// the forwarder has applied a change, so that a call which changed a rule returns once the rule is in force.
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { DriverError } from "../../driver.js";
import { BASE_ENV, MARKER_ENV, isOurs, spawnDetached } from "../processes.js";
import { AccountStore } from "../store.js";
import { bumpGeneration, networkDir, readApplied, writeAtomic } from "./plan.js";

// Compiled (dist/), the forwarder is daemon.js and runs with plain node; from src/ it is daemon.ts and runs through tsx.
const COMPILED = import.meta.url.endsWith(".js");
const DAEMON = fileURLToPath(new URL(COMPILED ? "./daemon.js" : "./daemon.ts", import.meta.url));
/** How long a change may take to be applied (the first one includes starting the forwarder on a busy machine). */
const APPLY_TIMEOUT_MS = 30_000;

export interface NetworkControl {
  /** Publishes a change; when a forwarder runs or is needed, waits until it has applied it. Returns the generation. */
  changed(signal: AbortSignal): Promise<number>;
  /** Publishes a change without waiting for it (a booting server is reachable once it is applied). */
  publish(signal: AbortSignal): Promise<number>;
  /** Starts the forwarder when none runs (the caller knows a server needs it). */
  ensure(signal: AbortSignal): Promise<void>;
  /** Whether the forwarder has applied generation `g` (or a later one). */
  applied(g: number): boolean;
  /** Listeners of the server the forwarder could not open, as "address:port CODE". */
  failures(serverId: string): string[];
}

export function networkControl(accountDir: string, tsxLoader: string): NetworkControl {
  const store = new AccountStore(accountDir);
  const dir = networkDir(accountDir);
  const daemonFile = join(dir, "daemon.json");

  const alive = (): boolean => {
    try {
      const d = JSON.parse(readFileSync(daemonFile, "utf8")) as { pid: number; start: string | null };
      return isOurs(d.pid, d.start);
    } catch {
      return false;
    }
  };

  /** Some server of the account wants to be reachable. */
  const needed = (): boolean => store.ids().some((id) => {
    const r = store.read(id);
    return !!r?.address && r.desired === "RUNNING";
  });

  async function spawn(signal: AbortSignal): Promise<void> {
    await store.withLock("network-daemon", signal, async () => {
      if (alive()) return;
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const { pid, start } = await spawnDetached({
        argv: COMPILED ? [process.execPath, DAEMON, accountDir] : [process.execPath, "--import", tsxLoader, DAEMON, accountDir],
        // The marker makes the forwarder one of the cloud's processes to a sweep (src/clouds/local/cleanup.ts).
        env: { ...BASE_ENV, [MARKER_ENV]: dir },
        cwd: dir,
        stdoutPath: join(dir, "daemon.log"),
        stderrPath: join(dir, "daemon.log"),
      });
      writeAtomic(daemonFile, `${JSON.stringify({ pid, start })}\n`);
    });
  }

  const control: NetworkControl = {
    async ensure(signal) {
      if (!alive()) await spawn(signal);
    },

    async publish(signal) {
      const generation = await bumpGeneration(accountDir, signal);
      await control.ensure(signal);
      return generation;
    },

    async changed(signal) {
      const generation = await bumpGeneration(accountDir, signal);
      const until = Date.now() + APPLY_TIMEOUT_MS;
      for (let n = 0; !control.applied(generation); n++) {
        if (n % 10 === 0 && !alive()) {
          // No forwarder and none needed: nothing listens, so nothing is left to change.
          if (!needed()) return generation;
          await spawn(signal);
        }
        if (Date.now() > until) throw new DriverError("UNAVAILABLE", `the local cloud's network did not apply the change within ${APPLY_TIMEOUT_MS / 1000} s (see ${join(dir, "daemon.log")})`);
        await sleep(25, undefined, { signal });
      }
      return generation;
    },

    applied: (g) => (readApplied(accountDir)?.generation ?? 0) >= g,

    failures(serverId) {
      return (readApplied(accountDir)?.failures ?? []).filter((f) => f.serverId === serverId).map((f) => `${f.listener} ${f.code}`);
    },
  };
  return control;
}
