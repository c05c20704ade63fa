// The `local` cloud driver: servers are real processes on this machine, each with its own port and work directory
// under <dataDir>/local-cloud/<account>/<serverId>/. Everything it knows is on disk, so any process answers for any
// server; a server's state is read from its process (alive, port answering), not from what was last written.
import { existsSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import {
  DriverError,
  callSignal,
  type CloudDriver,
  type DriverCallOptions,
  type DriverTarget,
  type LaunchRequest,
  type ServerObservation,
  type ServerRef,
  type ServerState,
} from "../driver.js";
import { authenticate, cloudDir, providerAccountId } from "./account.js";
import { catalogReader, imagesIn, productsIn, regionOf, type LocalCatalog } from "./catalog.js";
import { MARKER_ENV, freePort, isOurs, portAnswers, spawnDetached, stopGroup } from "./processes.js";
import { AccountStore, newServerId, type ServerRecord } from "./store.js";

export interface LocalDriverOptions {
  dataDir: string;
  /** localCloud.catalogFile: "" for the built-in catalog. */
  catalogFile: string;
  /** How long a stopping server may take after SIGTERM before SIGKILL. */
  stopGraceMs: number;
  /** How long a terminated server stays listed. Default one hour. */
  terminatedRetentionMs?: number;
}

/** The dispatcher's install: {root} in image commands. */
export const ROOT_DIR = fileURLToPath(new URL("../../../", import.meta.url));
const TSX_LOADER = import.meta.resolve("tsx");
/** Guests get a plain environment: never the dispatcher's own (which holds database URLs and keys). */
const BASE_ENV = { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C.UTF-8" };
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function createLocalDriver(options: LocalDriverOptions): CloudDriver {
  // Absolute, so the marker in each server's environment names its directory whatever the cwd.
  const dataDir = resolve(options.dataDir);
  const catalog = catalogReader(options.catalogFile);
  const retentionMs = options.terminatedRetentionMs ?? 3_600_000;

  /** The account's store when the credentials carry the key; AUTH otherwise. */
  const storeOf = (target: DriverTarget): AccountStore => new AccountStore(join(cloudDir(dataDir), authenticate(dataDir, target.credentials)));

  /** Runs one driver call: its signal and deadline honoured, failures classified. */
  async function call<T>(opts: DriverCallOptions, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const signal = callSignal(opts);
    try {
      if (opts.deadline.getTime() <= Date.now()) throw new DriverError("TIMEOUT", "the local cloud call arrived past its deadline");
      signal.throwIfAborted();
      return await fn(signal);
    } catch (err) {
      if (err instanceof DriverError) throw err;
      if (signal.aborted) throw new DriverError("TIMEOUT", "the local cloud call was aborted or passed its deadline", { cause: err });
      throw new DriverError("INTERNAL", "the local cloud failed unexpectedly", { cause: err, retryable: true });
    }
  }

  function find(store: AccountStore, ref: ServerRef): ServerRecord {
    const record = store.read(ref.providerId);
    if (!record || record.regionId !== ref.regionId) throw new DriverError("NOT_FOUND", `the local cloud has no server "${ref.providerId}" in region "${ref.regionId}"`);
    return record;
  }

  async function observe(store: AccountStore, r: ServerRecord): Promise<ServerObservation> {
    const running = r.pid !== null && isOurs(r.pid, r.pidStart);
    const state = await stateOf(store, r, running);
    const details: Record<string, string> = { port: String(r.port), workDir: store.serverDir(r.id), boots: String(r.boots) };
    if (running && r.pid !== null) details.pid = String(r.pid);
    if (r.startedAt) details.startedAt = r.startedAt;
    return {
      providerId: r.id,
      name: r.name,
      regionId: r.regionId,
      dataCenter: r.dataCenter,
      productId: r.productId,
      imageId: r.imageId,
      state,
      addresses: { private: state === "TERMINATED" ? [] : ["127.0.0.1"], public: [] },
      launchedAt: new Date(r.launchedAt),
      clientToken: r.clientToken,
      details,
    };
  }

  async function stateOf(store: AccountStore, r: ServerRecord, running: boolean): Promise<ServerState> {
    if (r.phase && store.locked(r.id)) return r.phase;
    if (r.desired === "TERMINATED") return "TERMINATED";
    if (r.desired === "STOPPED") return running ? "STOPPING" : "STOPPED";
    if (running) return (await hasAnswered(store, r)) ? "RUNNING" : "PENDING";
    // Never started yet (a launch under way) or died without being asked: the latter is what a cloud calls stopped.
    return r.boots === 0 && store.locked(r.id) ? "PENDING" : "STOPPED";
  }

  /**
   * Whether this boot's process has answered on its port. Once it has, it stays RUNNING while the process lives: a
   * probe that times out on a busy machine must not turn a running server back into a pending one. The marker file
   * is per boot, so a restart probes again.
   */
  async function hasAnswered(store: AccountStore, r: ServerRecord): Promise<boolean> {
    const marker = join(store.serverDir(r.id), `up.${r.boots}`);
    if (existsSync(marker)) return true;
    if (!(await portAnswers(r.port, 1_000))) return false;
    try {
      writeFileSync(marker, "");
    } catch {
      // The work directory went away (terminate under way): the answer stands for this observation.
    }
    return true;
  }

  /** Starts the server's process on its port (a new one when that is taken); bootstrap goes to this boot's env only. */
  async function boot(store: AccountStore, r: ServerRecord, bootstrap: Readonly<Record<string, string>>): Promise<void> {
    const image = catalog().images.find((i) => i.id === r.imageId);
    if (!image) throw new DriverError("CONFLICT", `image "${r.imageId}" of server ${r.id} is no longer in the local cloud's catalog`);
    const port = await freePort(r.port || undefined);
    const dir = store.serverDir(r.id);
    const fill = (s: string): string => s.replaceAll("{node}", process.execPath).replaceAll("{root}", ROOT_DIR.replace(/\/$/, "")).replaceAll("{tsx}", TSX_LOADER).replaceAll("{port}", String(port)).replaceAll("{dir}", dir);
    const env: Record<string, string> = { ...BASE_ENV, HOME: dir, PORT: String(port) };
    for (const [k, v] of Object.entries(image.env)) env[k] = fill(v);
    for (const [k, v] of Object.entries(bootstrap)) env[k] = v;
    env[MARKER_ENV] = dir;
    const { pid, start } = await spawnDetached({ argv: image.command.map(fill), env, cwd: dir, stdoutPath: join(dir, "stdout.log"), stderrPath: join(dir, "stderr.log") });
    Object.assign(r, { desired: "RUNNING", pid, pidStart: start, port, startedAt: new Date().toISOString(), boots: r.boots + 1 });
    store.write(r);
  }

  async function halt(store: AccountStore, r: ServerRecord, signal: AbortSignal): Promise<void> {
    if (r.pid !== null) await stopGroup(r.pid, r.pidStart, options.stopGraceMs, signal);
    r.pid = null;
    r.pidStart = null;
  }

  function launchable(cat: LocalCatalog, request: LaunchRequest): void {
    const bad = (what: string): never => {
      throw new DriverError("INVALID", what);
    };
    const region = cat.regions.find((r) => r.id === request.regionId) ?? bad(`the local cloud has no region "${request.regionId}"`);
    if (!region.capabilities.includes("compute")) throw new DriverError("UNSUPPORTED", `region "${region.id}" of the local cloud offers no compute`);
    if (request.dataCenter !== "" && !region.dataCenters.includes(request.dataCenter)) bad(`region "${region.id}" has no data center "${request.dataCenter}"`);
    if (!productsIn(cat, region).some((p) => p.id === request.productId)) bad(`region "${region.id}" offers no product "${request.productId}"`);
    if (!imagesIn(cat, region).some((i) => i.id === request.imageId)) bad(`region "${region.id}" offers no image "${request.imageId}"`);
    if (request.clientToken === "") bad("a client token is required");
    // Names only: the values are secret and never appear in an error.
    const badKey = Object.keys(request.bootstrap).find((k) => !ENV_NAME.test(k));
    if (badKey !== undefined) bad(`bootstrap entry "${badKey.slice(0, 64)}" is not a valid environment variable name`);
  }

  return {
    name: "local",

    testContext: (target, opts) => call(opts, async () => {
      storeOf(target);
      return { providerAccountId: providerAccountId() };
    }),

    listRegions: (target, opts) => call(opts, async () => {
      storeOf(target);
      return catalog().regions.map((r) => ({ id: r.id, name: r.name, dataCenters: [...r.dataCenters] }));
    }),

    probeCapabilities: (target, regionId, opts) => call(opts, async () => {
      storeOf(target);
      return [...regionOf(catalog(), regionId).capabilities];
    }),

    listProducts: (target, regionId, opts) => call(opts, async () => {
      storeOf(target);
      const cat = catalog();
      return productsIn(cat, regionOf(cat, regionId)).map((p) => ({ ...p }));
    }),

    listImages: (target, regionId, opts) => call(opts, async () => {
      storeOf(target);
      const cat = catalog();
      return imagesIn(cat, regionOf(cat, regionId)).map((i) => ({ id: i.id, name: i.name, platform: i.platform }));
    }),

    launch: (target, request, opts) => call(opts, async (signal) => {
      const store = storeOf(target);
      // A retry of a launch that went through returns its server, even if the catalog has changed since.
      const launched = request.clientToken === "" ? null : store.tokenOwner(request.clientToken);
      const cat = catalog();
      if (launched === null || store.read(launched) === null) launchable(cat, request);
      const { id } = store.bindToken(request.clientToken, newServerId());
      return store.withLock(id, signal, async () => {
        let r = store.read(id);
        if (r && (r.regionId !== request.regionId || r.productId !== request.productId || r.imageId !== request.imageId)) {
          throw new DriverError("CONFLICT", `client token already launched server ${r.id} with other parameters`);
        }
        if (!r) {
          const region = regionOf(cat, request.regionId);
          r = {
            id,
            name: request.name,
            regionId: request.regionId,
            dataCenter: request.dataCenter || (region.dataCenters[0] as string),
            productId: request.productId,
            imageId: request.imageId,
            clientToken: request.clientToken,
            desired: "RUNNING",
            phase: null,
            pid: null,
            pidStart: null,
            port: 0,
            launchedAt: new Date().toISOString(),
            startedAt: null,
            terminatedAt: null,
            boots: 0,
          };
          store.write(r);
        }
        // A first launch, or a retry of one that failed before its process started: (re)try the first boot.
        if (r.boots === 0 && r.desired === "RUNNING") {
          try {
            await boot(store, r, request.bootstrap);
          } catch (err) {
            if (err instanceof DriverError && !err.retryable) {
              Object.assign(r, { desired: "TERMINATED", terminatedAt: new Date().toISOString() });
              store.write(r);
            }
            throw err;
          }
        }
        return observe(store, r);
      });
    }),

    start: (target, ref, opts) => call(opts, async (signal) => {
      const store = storeOf(target);
      find(store, ref);
      await store.withLock(ref.providerId, signal, async () => {
        const r = find(store, ref);
        if (r.desired === "TERMINATED") throw new DriverError("CONFLICT", `server ${r.id} is terminated and cannot start`);
        if (r.pid !== null && isOurs(r.pid, r.pidStart)) {
          if (r.desired !== "RUNNING") store.write({ ...r, desired: "RUNNING" });
          return;
        }
        await boot(store, r, {});
      });
    }),

    stop: (target, ref, opts) => call(opts, async (signal) => {
      const store = storeOf(target);
      find(store, ref);
      await store.withLock(ref.providerId, signal, async () => {
        const r = find(store, ref);
        if (r.desired === "TERMINATED") throw new DriverError("CONFLICT", `server ${r.id} is terminated and cannot stop`);
        Object.assign(r, { desired: "STOPPED", phase: "STOPPING" });
        store.write(r);
        await halt(store, r, signal);
        r.phase = null;
        store.write(r);
      });
    }),

    reboot: (target, ref, opts) => call(opts, async (signal) => {
      const store = storeOf(target);
      find(store, ref);
      await store.withLock(ref.providerId, signal, async () => {
        const r = find(store, ref);
        if (r.desired !== "RUNNING") throw new DriverError("CONFLICT", `server ${r.id} is ${r.desired.toLowerCase()} and cannot reboot`);
        r.phase = "REBOOTING";
        store.write(r);
        try {
          await halt(store, r, signal);
          await boot(store, r, {});
        } finally {
          r.phase = null;
          store.write(r);
        }
      });
    }),

    terminate: (target, ref, opts) => call(opts, async (signal) => {
      const store = storeOf(target);
      if (!store.read(ref.providerId)) return; // already gone
      await store.withLock(ref.providerId, signal, async () => {
        const r = store.read(ref.providerId);
        if (!r) return;
        if (r.desired !== "TERMINATED") {
          r.phase = "TERMINATING";
          store.write(r);
        }
        await halt(store, r, signal);
        Object.assign(r, { desired: "TERMINATED", phase: null, terminatedAt: r.terminatedAt ?? new Date().toISOString() });
        store.write(r);
        store.cleanWorkDir(r.id);
      });
    }),

    getServer: (target, ref, opts) => call(opts, async () => {
      const store = storeOf(target);
      const r = store.read(ref.providerId);
      if (!r || r.regionId !== ref.regionId || expired(r, retentionMs)) return null;
      return observe(store, r);
    }),

    listServers: (target, regionId, opts) => call(opts, async () => {
      const store = storeOf(target);
      const records: ServerRecord[] = [];
      for (const id of store.ids()) {
        const r = store.read(id);
        if (r && expired(r, retentionMs)) store.forget(id);
        else if (r && r.regionId === regionId) records.push(r);
      }
      return Promise.all(records.map((r) => observe(store, r)));
    }),
  };
}

function expired(r: ServerRecord, retentionMs: number): boolean {
  return r.desired === "TERMINATED" && r.terminatedAt !== null && Date.now() - Date.parse(r.terminatedAt) > retentionMs;
}
