// The same clients as createDispatcherClients, but each service's generated code is loaded on its first call, so a
// program that calls one service (a CLI command) pays for that one only. Every method returns a promise or an async
// iterable anyway, which leaves room to load the code before the call.
import { promiseClient, type CallOptions } from "./calls.js";
import { openChannel, type DispatcherClientOptions } from "./channel.js";
import type { HealthClient } from "./health.js";
import type { DispatcherClients, ServiceKey } from "./types.js";

type Spec = { definition: object; requests: object };

/** Where each service's spec lives: one module per proto file. */
export const SERVICE_MODULES: Record<ServiceKey, () => Promise<Spec>> = {
  system: async () => (await import("./services/system.js")).system,
  jobs: async () => (await import("./services/jobs.js")).jobs,
  traces: async () => (await import("./services/traces.js")).traces,
  queues: async () => (await import("./services/queues.js")).queues,
  users: async () => (await import("./services/iam.js")).users,
  groups: async () => (await import("./services/iam.js")).groups,
  roles: async () => (await import("./services/iam.js")).roles,
  apiKeys: async () => (await import("./services/iam.js")).apiKeys,
  clouds: async () => (await import("./services/provisioning.js")).clouds,
  accounts: async () => (await import("./services/provisioning.js")).accounts,
  budgetCodes: async () => (await import("./services/provisioning.js")).budgetCodes,
  servers: async () => (await import("./services/servers.js")).servers,
  firewalls: async () => (await import("./services/network.js")).firewalls,
  addresses: async () => (await import("./services/network.js")).addresses,
  keyPairs: async () => (await import("./services/network.js")).keyPairs,
  volumes: async () => (await import("./services/storage.js")).volumes,
  snapshots: async () => (await import("./services/storage.js")).snapshots,
  images: async () => (await import("./services/storage.js")).images,
  files: async () => (await import("./services/files.js")).fileStore,
  agents: async () => (await import("./services/agents.js")).agents,
  analytics: async () => (await import("./services/analytics.js")).analytics,
  audit: async () => (await import("./services/audit.js")).audit,
};

/** Server-streaming methods (async iterables), known before their service's code loads; a test compares with the protos. */
export const STREAMING_METHODS: Partial<Record<ServiceKey, readonly string[]>> = { jobs: ["watchJob"], files: ["downloadObject"] };

type Method = (request?: unknown, options?: CallOptions) => unknown;

export function createLazyDispatcherClients(options: DispatcherClientOptions): DispatcherClients {
  const { grpc, defaults } = openChannel(options);
  const service = (key: ServiceKey): unknown => {
    let made: Promise<Record<string, Method>> | undefined;
    const client = () => (made ??= SERVICE_MODULES[key]().then((spec) => promiseClient(grpc, spec.definition as never, spec.requests as never, defaults) as Record<string, Method>));
    const methodOf = async (name: string): Promise<Method> => {
      const method = (await client())[name];
      if (!method) throw new TypeError(`${key}.${name} is not a method of the dispatcher's client`);
      return method;
    };
    const streaming = new Set(STREAMING_METHODS[key] ?? []);
    const methods = new Map<string, Method>();
    // Any name is a method: which ones exist is known once the code is loaded. `then` is not, or awaiting the
    // service object would call it.
    return new Proxy(
      {},
      {
        get(_target, name) {
          if (typeof name !== "string" || name === "then") return undefined;
          let method = methods.get(name);
          if (!method) {
            method = streaming.has(name)
              ? async function* (request, callOptions) {
                  yield* (await methodOf(name))(request, callOptions) as AsyncIterable<unknown>;
                }
              : async (request, callOptions) => (await methodOf(name))(request, callOptions);
            methods.set(name, method);
          }
          return method;
        },
      },
    );
  };
  let health: Promise<HealthClient> | undefined;
  const healthOf = () => (health ??= import("./health.js").then((h) => h.healthClient(grpc, defaults)));
  const clients = {
    health: {
      check: async (name, callOptions) => (await healthOf()).check(name, callOptions),
      async *watch(name, callOptions) {
        yield* (await healthOf()).watch(name, callOptions);
      },
    } satisfies HealthClient,
    grpc,
    close: () => grpc.close(),
  } as Partial<DispatcherClients>;
  for (const key of Object.keys(SERVICE_MODULES) as ServiceKey[]) Object.assign(clients, { [key]: service(key) });
  return clients as DispatcherClients;
}
