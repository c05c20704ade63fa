// The local cloud's servers: real processes on this machine, each with a work directory under
// <dataDir>/local-cloud/<account>/<serverId>/ and, where the machine allows, a loopback address of its own that it is
// reached on through the account's forwarder and its firewalls. A server's state is read from its process (alive,
// listening) and the forwarder (its address applied), never from what was last written.
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DriverError, MAX_USER_DATA_BYTES, type CloudDriver, type DriverTarget, type LaunchRequest, type ServerObservation, type ServerRef, type ServerState } from "../driver.js";
import { checkTags } from "../resources.js";
import { runCall } from "./call.js";
import { imagesIn, productsIn, regionOf } from "./catalog.js";
import { capabilitiesOf, requireCapability, withNetworkLock, type LocalContext } from "./context.js";
import { dropAssociations } from "./addresses.js";
import { ensureDefaultFirewall } from "./firewalls.js";
import { prepareFirstBoot, userDataStatus, type FirstBoot } from "./first-boot.js";
import { keyPairByName } from "./key-pairs.js";
import { backendOf, claimAddress, releaseClaim } from "./network/loopback.js";
import { serverAddresses } from "./network/plan.js";
import { BASE_ENV, MARKER_ENV, freePort, isOurs, portAnswers, spawnDetached, stopGroup } from "./processes.js";
import { ownImage, seedRoot } from "./storage-images.js";
import { newServerId, type ServerRecord } from "./store.js";

export interface LocalServerOptions {
  stopGraceMs: number;
  retentionMs: number;
  /** {root} in image commands: the dispatcher's install. */
  rootDir: string;
  tsxLoader: string;
}

type ServerMethods = Pick<CloudDriver, "launch" | "start" | "stop" | "reboot" | "terminate" | "getServer" | "listServers">;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function localServers(contextOf: (target: DriverTarget) => Promise<LocalContext>, options: LocalServerOptions): ServerMethods {
  function find(ctx: LocalContext, ref: ServerRef): ServerRecord {
    const record = ctx.store.read(ref.providerId);
    if (!record || record.regionId !== ref.regionId) throw new DriverError("NOT_FOUND", `the local cloud has no server "${ref.providerId}" in region "${ref.regionId}"`);
    return record;
  }

  async function observe(ctx: LocalContext, r: ServerRecord, signal: AbortSignal): Promise<ServerObservation> {
    const running = r.pid !== null && isOurs(r.pid, r.pidStart);
    const state = await stateOf(ctx, r, running, signal);
    const root = ctx.store.rootDir(r.id);
    const details: Record<string, string> = { port: String(r.port), workDir: ctx.store.serverDir(r.id), root, boots: String(r.boots) };
    if (running && r.pid !== null) details.pid = String(r.pid);
    if (r.startedAt) details.startedAt = r.startedAt;
    const userData = userDataStatus(root, r.userData === true);
    if (userData) details.userData = userData;
    const live = state !== "TERMINATED";
    if (live && r.address) {
      const failures = ctx.net.failures(r.id);
      if (failures.length > 0) details.network = `not listening on ${failures.join(", ")}`;
    }
    const ips = live ? serverAddresses(r, ctx.files) : [];
    return {
      providerId: r.id,
      name: r.name,
      regionId: r.regionId,
      dataCenter: r.dataCenter,
      productId: r.productId,
      imageId: r.imageId,
      state,
      // Where the server really answers: its own address (127.0.0.1 for one without), and its static address.
      addresses: { private: live ? [r.address ?? "127.0.0.1"] : [], public: ips.slice(1) },
      launchedAt: new Date(r.launchedAt),
      clientToken: r.clientToken,
      details,
      tags: { ...(r.tags ?? {}) },
      firewallIds: [...(r.firewallIds ?? [])],
      keyPairName: r.keyPairName ?? null,
    };
  }

  async function stateOf(ctx: LocalContext, r: ServerRecord, running: boolean, signal: AbortSignal): Promise<ServerState> {
    if (r.phase && ctx.store.locked(r.id)) return r.phase;
    if (r.desired === "TERMINATED") return "TERMINATED";
    if (r.desired === "STOPPED") return running ? "STOPPING" : "STOPPED";
    if (running) return (await hasAnswered(ctx, r, signal)) ? "RUNNING" : "PENDING";
    // Never started yet (a launch under way) or died without being asked: the latter is what a cloud calls stopped.
    return r.boots === 0 && ctx.store.locked(r.id) ? "PENDING" : "STOPPED";
  }

  /**
   * Whether this boot is up: its process answered on its port and, for a server with an address, the forwarder has
   * applied its boot. Once so, it stays RUNNING while the process lives (a probe that times out on a busy machine must
   * not flap it back to PENDING); the marker file is per boot, so a restart probes again.
   */
  async function hasAnswered(ctx: LocalContext, r: ServerRecord, signal: AbortSignal): Promise<boolean> {
    const marker = join(ctx.store.serverDir(r.id), `up.${r.boots}`);
    if (r.address) await ctx.net.ensure(signal); // a forwarder that died comes back
    if (existsSync(marker)) return true;
    if (r.address && !ctx.net.applied(r.netGeneration ?? 0)) return false;
    if (!(await portAnswers(r.port, 1_000, r.backend ?? "127.0.0.1"))) return false;
    try {
      writeFileSync(marker, "");
    } catch {
      // The work directory went away (terminate under way): the answer stands for this observation.
    }
    return true;
  }

  /** Starts the server's process; bootstrap goes to this boot's environment only, `first` to its root. */
  async function boot(ctx: LocalContext, r: ServerRecord, bootstrap: Readonly<Record<string, string>>, signal: AbortSignal, first?: FirstBoot): Promise<void> {
    const image = ctx.catalog.images.find((i) => i.id === (r.bootImageId ?? r.imageId));
    if (!image) throw new DriverError("CONFLICT", `image "${r.imageId}" of server ${r.id} is no longer in the local cloud's catalog`);
    // A server with an address of its own serves the image's port there; one without shares 127.0.0.1, so a free port.
    const port = r.address ? image.port : await freePort(r.port || undefined);
    const bind = r.backend ?? "127.0.0.1";
    const dir = ctx.store.serverDir(r.id);
    const root = ctx.store.rootDir(r.id);
    const fill = (s: string): string =>
      s.replaceAll("{node}", process.execPath).replaceAll("{root}", options.rootDir.replace(/\/$/, "")).replaceAll("{tsx}", options.tsxLoader).replaceAll("{port}", String(port)).replaceAll("{dir}", root).replaceAll("{bind}", bind).replaceAll("{address}", r.address ?? "127.0.0.1");
    const env: Record<string, string> = { ...BASE_ENV, HOME: root, PORT: String(port) };
    for (const [k, v] of Object.entries(image.env)) env[k] = fill(v);
    for (const [k, v] of Object.entries(bootstrap)) env[k] = v;
    env[MARKER_ENV] = dir;
    const argv = prepareFirstBoot(root, first ?? { publicKey: null, userData: null }, image.command.map(fill));
    const { pid, start } = await spawnDetached({ argv, env, cwd: root, stdoutPath: join(dir, "stdout.log"), stderrPath: join(dir, "stderr.log") });
    Object.assign(r, { desired: "RUNNING", pid, pidStart: start, port, startedAt: new Date().toISOString(), boots: r.boots + 1 });
    ctx.store.write(r);
    if (r.address) {
      r.netGeneration = await ctx.net.publish(signal);
      ctx.store.write(r);
    }
  }

  async function halt(r: ServerRecord, signal: AbortSignal): Promise<void> {
    if (r.pid !== null) await stopGroup(r.pid, r.pidStart, options.stopGraceMs, signal);
    r.pid = null;
    r.pidStart = null;
  }

  /** INVALID, UNSUPPORTED or NOT_FOUND for what cannot be launched; never quotes user data or a bootstrap value. */
  function launchable(ctx: LocalContext, request: LaunchRequest): void {
    const bad = (what: string): never => {
      throw new DriverError("INVALID", what);
    };
    const cat = ctx.catalog;
    const region = cat.regions.find((r) => r.id === request.regionId) ?? bad(`the local cloud has no region "${request.regionId}"`);
    if (!region.capabilities.includes("compute")) throw new DriverError("UNSUPPORTED", `region "${region.id}" of the local cloud offers no compute`);
    if (request.dataCenter !== "" && !region.dataCenters.includes(request.dataCenter)) bad(`region "${region.id}" has no data center "${request.dataCenter}"`);
    if (!productsIn(cat, region).some((p) => p.id === request.productId)) bad(`region "${region.id}" offers no product "${request.productId}"`);
    if (!imagesIn(cat, region).some((i) => i.id === request.imageId) && !ownImage(ctx, region.id, request.imageId)) bad(`region "${region.id}" offers no image "${request.imageId}"`);
    if (request.clientToken === "") bad("a client token is required");
    // Names only: the values are secret and never appear in an error.
    const badKey = Object.keys(request.bootstrap).find((k) => !ENV_NAME.test(k));
    if (badKey !== undefined) bad(`bootstrap entry "${badKey.slice(0, 64)}" is not a valid environment variable name`);
    if (request.userData !== undefined && Buffer.byteLength(request.userData) > MAX_USER_DATA_BYTES) bad(`user data is limited to ${MAX_USER_DATA_BYTES} bytes`);
    checkTags(request.tags ?? {});
    if (request.firewallIds && request.firewallIds.length > 0) {
      requireCapability(ctx, region.id, "firewalls");
      for (const id of request.firewallIds) {
        const f = ctx.files.read("firewall", id);
        if (!f || f.regionId !== region.id) bad(`region "${region.id}" has no firewall "${id.slice(0, 64)}"`);
      }
    }
    if (request.keyPairName !== undefined) {
      requireCapability(ctx, region.id, "key_pairs");
      if (!keyPairByName(ctx, region.id, request.keyPairName)) bad(`region "${region.id}" has no key pair "${request.keyPairName.slice(0, 64)}"`);
    }
  }

  /** A new server's record: its address claimed (where the machine allows), its firewalls (the default when none). */
  async function newRecord(ctx: LocalContext, id: string, request: LaunchRequest, signal: AbortSignal): Promise<ServerRecord> {
    const region = regionOf(ctx.catalog, request.regionId);
    const r: ServerRecord = {
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
      address: null,
      backend: null,
      firewallIds: [],
      keyPairName: request.keyPairName ?? null,
      tags: { ...(request.tags ?? {}) },
      userData: request.userData !== undefined,
    };
    const own = ownImage(ctx, request.regionId, request.imageId);
    if (own) r.bootImageId = own.baseImageId;
    if (ctx.addressing) {
      r.address = claimAddress("server", ctx.store.statePath(id));
      r.backend = backendOf(r.address);
      // In a region with firewalls a server is in at least one (the default when none is named); in one without, in
      // none, and everything on this machine may reach it.
      const named = [...new Set(request.firewallIds ?? [])];
      if (named.length > 0) r.firewallIds = named;
      else if (capabilitiesOf(ctx, r.regionId).includes("firewalls")) r.firewallIds = [await withNetworkLock(ctx, signal, async () => ensureDefaultFirewall(ctx, request.regionId).id)];
    }
    ctx.store.write(r);
    return r;
  }

  return {
    launch: (target, request, opts) =>
      runCall(opts, async (signal) => {
        const ctx = await contextOf(target);
        const { store } = ctx;
        // A retry of a launch that went through returns its server, even if the catalog has changed since.
        const launched = request.clientToken === "" ? null : store.tokenOwner(request.clientToken);
        if (launched === null || store.read(launched) === null) launchable(ctx, request);
        const { id } = store.bindToken(request.clientToken, newServerId());
        return store.withLock(id, signal, async () => {
          let r = store.read(id);
          if (r && (r.regionId !== request.regionId || r.productId !== request.productId || r.imageId !== request.imageId)) {
            throw new DriverError("CONFLICT", `client token already launched server ${r.id} with other parameters`);
          }
          r ??= await newRecord(ctx, id, request, signal);
          // A first launch, or a retry of one that failed before its process started: (re)try the first boot.
          if (r.boots === 0 && r.desired === "RUNNING") {
            const key = r.keyPairName ? keyPairByName(ctx, r.regionId, r.keyPairName) : null;
            try {
              if (r.keyPairName && !key) throw new DriverError("INVALID", `region "${r.regionId}" has no key pair "${r.keyPairName.slice(0, 64)}"`);
              if (r.bootImageId) await seedFromImage(ctx, r, signal);
              await boot(ctx, r, request.bootstrap, signal, { publicKey: key?.publicKey ?? null, userData: request.userData ?? null });
            } catch (err) {
              if (err instanceof DriverError && !err.retryable) await retire(ctx, r, signal);
              throw err;
            }
          }
          return observe(ctx, r, signal);
        });
      }),

    start: (target, ref, opts) =>
      runCall(opts, async (signal) => {
        const ctx = await contextOf(target);
        find(ctx, ref);
        await ctx.store.withLock(ref.providerId, signal, async () => {
          const r = find(ctx, ref);
          if (r.desired === "TERMINATED") throw new DriverError("CONFLICT", `server ${r.id} is terminated and cannot start`);
          if (r.pid !== null && isOurs(r.pid, r.pidStart)) {
            if (r.desired !== "RUNNING") ctx.store.write({ ...r, desired: "RUNNING" });
            return;
          }
          await boot(ctx, r, {}, signal);
        });
      }),

    stop: (target, ref, opts) =>
      runCall(opts, async (signal) => {
        const ctx = await contextOf(target);
        const r0 = find(ctx, ref);
        await ctx.store.withLock(ref.providerId, signal, async () => {
          const r = find(ctx, ref);
          if (r.desired === "TERMINATED") throw new DriverError("CONFLICT", `server ${r.id} is terminated and cannot stop`);
          Object.assign(r, { desired: "STOPPED", phase: "STOPPING" });
          ctx.store.write(r);
          await halt(r, signal);
          r.phase = null;
          ctx.store.write(r);
        });
        // Its addresses stop answering before the call returns.
        if (r0.address) await ctx.net.changed(signal);
      }),

    reboot: (target, ref, opts) =>
      runCall(opts, async (signal) => {
        const ctx = await contextOf(target);
        find(ctx, ref);
        await ctx.store.withLock(ref.providerId, signal, async () => {
          const r = find(ctx, ref);
          if (r.desired !== "RUNNING") throw new DriverError("CONFLICT", `server ${r.id} is ${r.desired.toLowerCase()} and cannot reboot`);
          r.phase = "REBOOTING";
          ctx.store.write(r);
          try {
            await halt(r, signal);
            await boot(ctx, r, {}, signal);
          } finally {
            r.phase = null;
            ctx.store.write(r);
          }
        });
      }),

    terminate: (target, ref, opts) =>
      runCall(opts, async (signal) => {
        const ctx = await contextOf(target);
        const r0 = ctx.store.read(ref.providerId);
        if (!r0) return; // already gone
        await ctx.store.withLock(ref.providerId, signal, async () => {
          const r = ctx.store.read(ref.providerId);
          if (!r) return;
          if (r.desired !== "TERMINATED") {
            r.phase = "TERMINATING";
            ctx.store.write(r);
          }
          await halt(r, signal);
          await retire(ctx, r, signal);
          ctx.store.cleanWorkDir(r.id);
        });
        if (r0.address) await ctx.net.changed(signal);
      }),

    getServer: (target, ref, opts) =>
      runCall(opts, async (signal) => {
        const ctx = await contextOf(target);
        const r = ctx.store.read(ref.providerId);
        if (!r || r.regionId !== ref.regionId || expired(r, options.retentionMs)) return null;
        return observe(ctx, r, signal);
      }),

    listServers: (target, regionId, opts) =>
      runCall(opts, async (signal) => {
        const ctx = await contextOf(target);
        const records: ServerRecord[] = [];
        for (const id of ctx.store.ids()) {
          const r = ctx.store.read(id);
          if (r && expired(r, options.retentionMs)) ctx.store.forget(id);
          else if (r && r.regionId === regionId) records.push(r);
        }
        return Promise.all(records.map((r) => observe(ctx, r, signal)));
      }),
  };

  /** A server launched from one of the account's own images starts with a copy of the image's root. */
  async function seedFromImage(ctx: LocalContext, r: ServerRecord, signal: AbortSignal): Promise<void> {
    await ctx.store.withLock(r.imageId, signal, async () => {
      const image = ownImage(ctx, r.regionId, r.imageId);
      if (!image) throw new DriverError("INVALID", `region "${r.regionId}" has no image "${r.imageId.slice(0, 64)}" any more`);
      await seedRoot(ctx, image, ctx.store.rootDir(r.id));
    });
  }

  /** Marks the server TERMINATED and gives up what it held: its static address's association and its own address. */
  async function retire(ctx: LocalContext, r: ServerRecord, signal: AbortSignal): Promise<void> {
    Object.assign(r, { desired: "TERMINATED", phase: null, terminatedAt: r.terminatedAt ?? new Date().toISOString() });
    ctx.store.write(r);
    if (!r.address) return;
    await withNetworkLock(ctx, signal, async () => dropAssociations(ctx, r.id));
    releaseClaim(r.address, ctx.store.statePath(r.id));
  }
}

function expired(r: ServerRecord, retentionMs: number): boolean {
  return r.desired === "TERMINATED" && r.terminatedAt !== null && Date.now() - Date.parse(r.terminatedAt) > retentionMs;
}

