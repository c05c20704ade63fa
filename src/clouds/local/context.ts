// One local cloud call's view of its account: the server store, the resource records, the network control and the
// catalog, plus the rule every resource service keeps first — the region exists and has the capability the service
// needs on this machine (the catalog's capabilities, less what this machine cannot give).
import { DriverError, type Capability } from "../driver.js";
import { regionOf, type LocalCatalog } from "./catalog.js";
import type { NetworkControl } from "./network/control.js";
import type { RecordFiles } from "./records.js";
import type { AccountStore } from "./store.js";

/** Capabilities that need servers to have loopback addresses of their own. */
export const ADDRESS_CAPABILITIES: ReadonlySet<Capability> = new Set(["firewalls", "static_addresses"]);

export interface LocalContext {
  store: AccountStore;
  files: RecordFiles;
  net: NetworkControl;
  catalog: LocalCatalog;
  /** Whether servers get addresses of their own here (src/clouds/local/network/loopback.ts). */
  addressing: boolean;
}

/** What the region offers on this machine: NOT_FOUND for an unknown region. */
export function capabilitiesOf(ctx: Pick<LocalContext, "catalog" | "addressing">, regionId: string): Capability[] {
  const caps = regionOf(ctx.catalog, regionId).capabilities;
  return ctx.addressing ? [...caps] : caps.filter((c) => !ADDRESS_CAPABILITIES.has(c));
}

/** INVALID for an unknown region, UNSUPPORTED naming the capability the region lacks. */
export function requireCapability(ctx: LocalContext, regionId: string, capability: Capability): void {
  if (!ctx.catalog.regions.some((r) => r.id === regionId)) throw new DriverError("INVALID", `the local cloud has no region "${regionId.slice(0, 64)}"`);
  if (!capabilitiesOf(ctx, regionId).includes(capability)) {
    const why = ADDRESS_CAPABILITIES.has(capability) && !ctx.addressing ? " (this machine cannot give servers loopback addresses of their own)" : "";
    throw new DriverError("UNSUPPORTED", `region "${regionId}" of the local cloud has no ${capability}${why}`);
  }
}

/** Runs `fn` under the account's network lock: every change of firewalls, addresses and their servers' sets. */
export function withNetworkLock<T>(ctx: LocalContext, signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
  return ctx.store.withLock("network", signal, fn);
}

/** A name as the local cloud takes it: 1–255 printable characters. */
export function checkName(what: string, name: string): void {
  if (name.length < 1 || name.length > 255 || /\p{Cc}/u.test(name)) throw new DriverError("INVALID", `a ${what} name has 1 to 255 characters, no control characters`);
}
