// Drivers by name. Every driver is wrapped so each call is a CLIENT span `driver.<name>.<method>` carrying the
// cloud, account and region ids (never a credential), and a non-DriverError thrown by a driver becomes INTERNAL.
import { DriverError, type CloudDriver } from "./driver.js";
import { SpanKind, withSpan } from "../telemetry/spans.js";

export interface DriverRegistry {
  /** UNSUPPORTED DriverError (permanent) for a name no driver answers to. */
  get(name: string): CloudDriver;
  has(name: string): boolean;
  names(): string[];
}

type Method = Exclude<keyof CloudDriver, "name">;

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
  const wrap = <M extends Method>(method: M): CloudDriver[M] =>
    (async (...args: unknown[]) => {
      const target = args[0] as Parameters<CloudDriver["testContext"]>[0];
      const second = args[1];
      const region = typeof second === "string" ? second : second && typeof second === "object" && "regionId" in second ? String((second as { regionId: string }).regionId) : undefined;
      const attributes = {
        "cloud.driver": driver.name,
        "cloud.id": target.cloud.id,
        "cloud.account.id": target.account.id,
        ...(region ? { "cloud.region": region } : {}),
        ...(second && typeof second === "object" && "providerId" in second ? { "cloud.server.provider_id": String((second as { providerId: string }).providerId) } : {}),
      };
      return withSpan(`driver.${driver.name}.${method}`, { kind: SpanKind.CLIENT, attributes }, async (span) => {
        try {
          return await (driver[method] as (...a: unknown[]) => Promise<unknown>).apply(driver, args);
        } catch (err) {
          if (err instanceof DriverError) {
            span.setAttribute("cloud.error.code", err.code);
            span.setAttribute("cloud.error.retryable", err.retryable);
            throw err;
          }
          if (err instanceof Error && (err.name === "AbortError" || err.name === "TimeoutError")) throw new DriverError("TIMEOUT", `${driver.name} ${method} was aborted or timed out`, { cause: err });
          throw new DriverError("INTERNAL", `${driver.name} ${method} failed unexpectedly`, { cause: err, retryable: true });
        }
      });
    }) as CloudDriver[M];
  return {
    name: driver.name,
    testContext: wrap("testContext"),
    listRegions: wrap("listRegions"),
    probeCapabilities: wrap("probeCapabilities"),
    listProducts: wrap("listProducts"),
    listImages: wrap("listImages"),
    launch: wrap("launch"),
    start: wrap("start"),
    stop: wrap("stop"),
    reboot: wrap("reboot"),
    terminate: wrap("terminate"),
    getServer: wrap("getServer"),
    listServers: wrap("listServers"),
  };
}
