// Drivers by name. Every driver is wrapped so each call — its resource services' too — is a CLIENT span
// `driver.<name>.<method>` (`driver.<name>.<service>.<method>`) carrying the cloud, account, region and resource ids
// (never a credential or a request's content), and a non-DriverError thrown by a driver becomes INTERNAL.
import { DriverError, type CloudDriver, type DriverTarget } from "./driver.js";
import { recordDriverCall, secondsSince } from "../telemetry/metrics.js";
import { SpanKind, withSpan } from "../telemetry/spans.js";

export interface DriverRegistry {
  /** UNSUPPORTED DriverError (permanent) for a name no driver answers to. */
  get(name: string): CloudDriver;
  has(name: string): boolean;
  names(): string[];
}

export function createDriverRegistry(drivers: CloudDriver[]): DriverRegistry {
  const byName = new Map<string, CloudDriver>();
  for (const d of drivers) {
    if (byName.has(d.name)) throw new Error(`cloud driver ${d.name} registered twice`);
    byName.set(d.name, traced(d));
  }
  return {
    get(name) {
      const driver = byName.get(name);
      if (!driver) throw new DriverError("UNSUPPORTED", `no cloud driver named "${name}" (known: ${[...byName.keys()].join(", ")})`);
      return driver;
    },
    has: (name) => byName.has(name),
    names: () => [...byName.keys()],
  };
}

function traced(driver: CloudDriver): CloudDriver {
  const wrap = <F>(method: string, fn: F, resourceType = "server"): F =>
    (async (...args: unknown[]) => {
      const target = args[0] as DriverTarget;
      return withSpan(`driver.${driver.name}.${method}`, { kind: SpanKind.CLIENT, attributes: { "cloud.driver": driver.name, ...spanAttributes(target, args[1], resourceType) } }, async (span) => {
        const started = performance.now();
        try {
          const result = await (fn as (...a: unknown[]) => Promise<unknown>)(...args);
          recordDriverCall(driver.name, method, "ok", secondsSince(started));
          return result;
        } catch (err) {
          recordDriverCall(driver.name, method, err instanceof DriverError ? err.code : err instanceof Error && (err.name === "AbortError" || err.name === "TimeoutError") ? "TIMEOUT" : "INTERNAL", secondsSince(started));
          if (err instanceof DriverError) {
            span.setAttribute("cloud.error.code", err.code);
            span.setAttribute("cloud.error.retryable", err.retryable);
            throw err;
          }
          if (err instanceof Error && (err.name === "AbortError" || err.name === "TimeoutError")) throw new DriverError("TIMEOUT", `${driver.name} ${method} was aborted or timed out`, { cause: err });
          throw new DriverError("INTERNAL", `${driver.name} ${method} failed unexpectedly`, { cause: err, retryable: true });
        }
      });
    }) as F;
  const wrapped = { name: driver.name } as Record<string, unknown>;
  for (const method of METHODS) wrapped[method] = wrap(method, driver[method].bind(driver));
  if (driver.services) {
    const services: Record<string, unknown> = {};
    for (const [name, service] of Object.entries(driver.services) as Array<[string, Record<string, unknown> | undefined]>) {
      if (!service) continue;
      // Services are plain objects: their own function properties become traced calls; plain values (`support`) pass.
      const out: Record<string, unknown> = {};
      for (const [key, value] of Object.entries(service)) {
        const method = `${name}.${key}`;
        out[key] = typeof value === "function" ? wrap(method, (value as (...a: unknown[]) => unknown).bind(service), ABOUT_A_SERVER.has(method) ? "server" : SERVICE_TYPE[name]) : value;
      }
      services[name] = out;
    }
    wrapped.services = services;
  }
  return wrapped as unknown as CloudDriver;
}

const METHODS = ["testContext", "listRegions", "probeCapabilities", "listProducts", "listImages", "launch", "start", "stop", "reboot", "terminate", "getServer", "listServers"] as const satisfies ReadonlyArray<Exclude<keyof CloudDriver, "name" | "services">>;

/** The resource type each service's calls are about (tags name theirs in the reference). */
const SERVICE_TYPE: Readonly<Record<string, string | undefined>> = { firewalls: "firewall", addresses: "address", keyPairs: "key_pair", volumes: "volume", snapshots: "snapshot", images: "image", blobStore: "bucket" };
/** Service calls whose reference is a server's. */
const ABOUT_A_SERVER = new Set(["firewalls.setServerFirewalls"]);

/**
 * The ids a call is about, from its second argument: a region id, or a request or reference carrying `regionId`,
 * `providerId` and a resource `type`. Only ids: never a request's content (user data, a public key, tags).
 */
function spanAttributes(target: DriverTarget, second: unknown, resourceType: string | undefined): Record<string, string> {
  const attributes: Record<string, string> = { "cloud.id": target.cloud.id, "cloud.account.id": target.account.id };
  if (typeof second === "string") attributes["cloud.region"] = second;
  else if (second && typeof second === "object") {
    const o = second as { regionId?: unknown; providerId?: unknown; type?: unknown };
    if (typeof o.regionId === "string") attributes["cloud.region"] = o.regionId;
    const type = typeof o.type === "string" ? o.type : resourceType;
    if (typeof o.providerId === "string") {
      if (type === "server") attributes["cloud.server.provider_id"] = o.providerId;
      else {
        attributes["cloud.resource.provider_id"] = o.providerId;
        if (type) attributes["cloud.resource.type"] = type;
      }
    }
  }
  return attributes;
}
