// The `local` cloud driver: servers are real processes on this machine (src/clouds/local/servers.ts), reached on
// loopback addresses of their own through the account's forwarder, which enforces their firewalls
// (src/clouds/local/network/); static addresses, key pairs and tags are records beside them; volumes, snapshots,
// images and buckets are directories of files (src/clouds/local/storage-*.ts). Everything it knows is
// on disk under <dataDir>/local-cloud/<account>/, so any process answers for any server.
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Logger } from "../../log.js";
import type { CloudDriver, DriverTarget } from "../driver.js";
import { authenticate, cloudDir, providerAccountId } from "./account.js";
import { localAddresses } from "./addresses.js";
import { runCall } from "./call.js";
import { catalogReader, imagesIn, productsIn, regionOf } from "./catalog.js";
import { capabilitiesOf, type LocalContext } from "./context.js";
import { localFirewalls } from "./firewalls.js";
import { localKeyPairs } from "./key-pairs.js";
import { networkControl } from "./network/control.js";
import { checkLoopback, type LoopbackCheck } from "./network/loopback.js";
import { RecordFiles } from "./records.js";
import { localServers } from "./servers.js";
import { localBlobStore } from "./storage-buckets.js";
import { localImages } from "./storage-images.js";
import { localSnapshots, localVolumes } from "./storage-volumes.js";
import { AccountStore } from "./store.js";
import { localTags } from "./tags.js";

export interface LocalDriverOptions {
  dataDir: string;
  /** localCloud.catalogFile: "" for the built-in catalog. */
  catalogFile: string;
  /** How long a stopping server may take after SIGTERM before SIGKILL. */
  stopGraceMs: number;
  /** How long a terminated server stays listed. Default one hour. */
  terminatedRetentionMs?: number;
  /** Where the driver says, once, what this machine lets it do. */
  log?: Pick<Logger, "info" | "warn">;
  /** false: servers get no addresses of their own even where the machine allows (as where it does not). */
  addressing?: boolean;
}

/** The dispatcher's install: {root} in image commands. */
export const ROOT_DIR = fileURLToPath(new URL("../../../", import.meta.url));
/** tsx's loader for {tsx} in image commands: a development install has it, a production one does not (then ""). */
const TSX_LOADER = tsxLoader();

function tsxLoader(): string {
  try {
    return import.meta.resolve("tsx");
  } catch {
    return "";
  }
}

export function createLocalDriver(options: LocalDriverOptions): CloudDriver {
  // Absolute, so the marker in each server's environment names its directory whatever the cwd.
  const dataDir = resolve(options.dataDir);
  const catalog = catalogReader(options.catalogFile);
  const addressing: Promise<LoopbackCheck> = options.addressing === false ? Promise.resolve({ usable: false, reason: "turned off" }) : checkLoopback();
  void addressing.then((check) => {
    if (check.usable) options.log?.info("local cloud: each server answers on a loopback address of its own, through firewalls its forwarder enforces");
    else options.log?.warn({ reason: check.reason }, "local cloud: this machine cannot give servers loopback addresses of their own, so firewalls and static addresses are not offered (servers answer on 127.0.0.1, unfiltered)");
  });

  /** The call's account (AUTH unless the credentials carry the account key). */
  async function contextOf(target: DriverTarget): Promise<LocalContext> {
    const dir = join(cloudDir(dataDir), authenticate(dataDir, target.credentials));
    return { store: new AccountStore(dir), files: new RecordFiles(dir), net: networkControl(dir, TSX_LOADER), catalog: catalog(), addressing: (await addressing).usable };
  }

  const servers = localServers(contextOf, { stopGraceMs: options.stopGraceMs, retentionMs: options.terminatedRetentionMs ?? 3_600_000, rootDir: ROOT_DIR, tsxLoader: TSX_LOADER });

  return {
    name: "local",

    testContext: (target, opts) =>
      runCall(opts, async () => {
        await contextOf(target);
        return { providerAccountId: providerAccountId() };
      }),

    listRegions: (target, opts) =>
      runCall(opts, async () => {
        const ctx = await contextOf(target);
        return ctx.catalog.regions.map((r) => ({ id: r.id, name: r.name, dataCenters: [...r.dataCenters] }));
      }),

    // The catalog's capabilities, less what this machine cannot give (addresses of its own need Linux's loopback).
    probeCapabilities: (target, regionId, opts) => runCall(opts, async () => capabilitiesOf(await contextOf(target), regionId)),

    listProducts: (target, regionId, opts) =>
      runCall(opts, async () => {
        const ctx = await contextOf(target);
        return productsIn(ctx.catalog, regionOf(ctx.catalog, regionId)).map((p) => ({ ...p }));
      }),

    listImages: (target, regionId, opts) =>
      runCall(opts, async () => {
        const ctx = await contextOf(target);
        return imagesIn(ctx.catalog, regionOf(ctx.catalog, regionId)).map((i) => ({ id: i.id, name: i.name, platform: i.platform }));
      }),

    ...servers,

    services: {
      firewalls: localFirewalls(contextOf),
      addresses: localAddresses(contextOf),
      keyPairs: localKeyPairs(contextOf),
      tags: localTags(contextOf),
      volumes: localVolumes(contextOf),
      snapshots: localSnapshots(contextOf),
      images: localImages(contextOf),
      blobStore: localBlobStore(contextOf),
    },
  };
}
