// `dispatcher start` and `dispatcher serve`: open resources, optionally migrate, run roles until SIGINT/SIGTERM.
import { waitForDatabase } from "../db/connect.js";
import { migrateAll } from "../db/migrate.js";
import { ensureBootstrapAdmin } from "../iam/api-keys/keys.js";
import { kmServerSettings, prepareDevelopmentKm } from "../km/settings.js";
import { closeResources, needsSharedStores, openResources } from "../app/resources.js";
import { ROLES, type RunningRole } from "../app/roles.js";
import { measuring } from "../telemetry/metrics.js";
import { observePool } from "../telemetry/metrics-observers.js";
import { observeRuntime } from "../telemetry/runtime-metrics.js";
import { setHeapGrowing } from "../runtime/heap.js";
import { startMetrics } from "../telemetry/metrics-server.js";
import { progress, setup, type CommandOptions } from "./common.js";
import { checkPortsFree } from "./ports.js";
import { writeAdminKeyFile } from "./admin-key-file.js";

export interface ServeOptions extends CommandOptions {
  roles: string[];
  migrate: boolean;
  /** `dispatcher start`: in development mode, writes the KM certificates and keys it needs when none are configured. */
  quickStart?: boolean;
}

export async function runServe(options: ServeOptions): Promise<number> {
  const { config, log } = await setup(options);
  // Before the roles allocate: their long-lived state is what the first full collection sizes the heap from.
  setHeapGrowing(config.runtime.heapGrowingPercent);
  if (options.quickStart) for (const note of prepareDevelopmentKm(config)) progress(note);
  // KM refuses to start without a valid master key, channel key and certificates: say so before anything connects.
  if (options.roles.includes("km")) kmServerSettings(config);
  // Every port free before anything connects or starts: a taken one stops the start at once.
  await checkPortsFree(config, options.roles);
  // A process running only KM needs only KM's own credentials database (KM migrates it at its start).
  const shared = needsSharedStores(options.roles);
  // Waits (and says so) while MariaDB cannot be reached, as a role started before its database must.
  if (shared) await waitForDatabase(config.provisioning.url, { log, requireDatabase: !options.migrate, giveUpAfterMs: config.startup.waitForStoresMs });
  if (options.migrate && shared) {
    progress("applying database migrations");
    // Analytics is not critical: the dispatcher starts without it (metrics and cost reports answer UNAVAILABLE).
    await migrateAll(config, log, (line) => progress(line), { optional: ["analytics"] });
  }
  // Before the roles, so that their instruments bind to the installed meter provider.
  let probe: (() => string | null) | undefined;
  const served = await startMetrics({ config, roles: options.roles, log: log.child({ component: "metrics" }), probe: () => probe?.() ?? null });
  if (shared) progress(`connecting to MariaDB and NATS (${config.mq.url})`);
  const resources = await openResources(config, log, options.roles).catch(async (err: unknown) => {
    await served.stop();
    throw err;
  });
  if (shared) probe = () => (resources.nats.isClosed() ? "the NATS connection is closed" : null);
  const unobserve = shared ? [observePool("provisioning", () => resources.sql.stats?.() ?? { active: 0, idle: 0, waiting: 0 })] : [];
  if (measuring()) unobserve.push(observeRuntime());
  const running: { name: string; role: RunningRole }[] = [];
  // Listening for the stop signal before the first role starts: the dispatcher answers SERVING as soon as its role is
  // up, and a SIGTERM sent then (an impatient supervisor, a test) must still drain and exit 0, not kill the process.
  const signalled = waitForSignal();
  try {
    if (options.migrate && shared) {
      const bootstrap = await ensureBootstrapAdmin(resources.provisioning);
      if (bootstrap) {
        // Shown once, on the terminal only (never in a log), and kept in a file only its owner can read.
        const file = writeAdminKeyFile(config.dataDir, bootstrap.secret);
        const where =
          "path" in file
            ? `  It is also in ${file.path}, readable by you only; delete that file once the key is kept elsewhere.\n\n`
            : `  It could not be written to a file (${file.error}): copy it now.\n\n`;
        process.stderr.write(`\n  First start: an admin API key was created. It is shown only this once; keep it safe.\n\n    export DISPATCHER_CLIENT_TOKEN=${bootstrap.secret}\n\n${where}`);
      }
    }
    for (const role of ROLES.filter((r) => options.roles.includes(r.name))) {
      progress(`starting role ${role.name}`);
      running.push({ name: role.name, role: await role.start(resources) });
    }
  } catch (err) {
    await stopAll(running, 0);
    await closeResources(resources);
    await served.stop();
    throw err;
  }
  served.setReady(true);
  log.info({ roles: options.roles, instance: resources.instanceId, port: config.server.port }, "dispatcher started");
  if (options.roles.includes("dispatcher") && config.console.enabled) progress(`operations console on ${consoleUrl(config.console)}`);
  if (served.port !== undefined) progress(`metrics on ${config.metrics.bind}:${served.port} (/metrics, /healthz, /readyz)`);
  progress(`ready: roles ${options.roles.join(", ")}; gRPC on ${config.server.bind}:${config.server.port}. Ctrl-C stops.`);

  const signal = await signalled;
  progress(`${signal} received: finishing in-flight work (up to ${config.server.shutdownGraceMs} ms)`);
  log.info({ signal }, "shutting down");
  served.setReady(false);
  await stopAll(running, config.server.shutdownGraceMs);
  unobserve.forEach((remove) => remove());
  await closeResources(resources);
  await served.stop();
  log.info("stopped");
  progress("stopped");
  return 0;
}

/** Where a browser on this machine opens the console. */
function consoleUrl(c: { bind: string; port: number }): string {
  const host = c.bind === "0.0.0.0" || c.bind === "::" || c.bind === "" ? "127.0.0.1" : c.bind.includes(":") ? `[${c.bind}]` : c.bind;
  return `http://${host}:${c.port}/`;
}

async function stopAll(running: { name: string; role: RunningRole }[], graceMs: number): Promise<void> {
  for (const { role } of [...running].reverse()) await role.stop(graceMs);
}

function waitForSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      // A second signal during the graceful stop ends the process at once.
      const force = (): void => process.exit(130);
      process.once("SIGINT", force);
      process.once("SIGTERM", force);
      resolve(signal);
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  });
}
