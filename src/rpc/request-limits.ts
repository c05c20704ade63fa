// Per-method maximum request sizes (OWASP API4): most methods take a few hundred bytes, so a request of megabytes is
// refused before it is decoded. grpc-js itself refuses anything over server.maxMessageBytes before buffering it; below
// that, each method has its limit: a configured override, else this table, else server.maxRequestBytes. A request
// over its method's limit answers RESOURCE_EXHAUSTED (what gRPC answers for an oversized message), ErrorInfo
// REQUEST_TOO_LARGE, before authentication — as oversized metadata does.

const KIB = 1024;
const MIB = 1024 * KIB;

/** Methods whose requests legitimately exceed the default: what their own validation lets through, plus framing. */
export const METHOD_MAX_REQUEST_BYTES: Readonly<Record<string, number>> = Object.freeze({
  // A script: command, up to 256 arguments of 4 KiB, and its environment.
  "/dispatcher.v1.ServerAgentService/RunServerScript": 2 * MIB,
  // Credentials: up to 32 fields of 16 KiB (src/km/validate.ts), and labels.
  "/dispatcher.v1.AccountService/CreateAccount": MIB,
  "/km.v1.KeyManagementService/StoreCredential": MIB,
  // Object bytes: each message of an upload is a chunk (the CLI sends 1 MiB), up to grpc-js's own cap.
  "/dispatcher.v1.FileService/UploadObject": 4 * MIB,
  "/dispatcher.v1.FileService/UploadPart": 4 * MIB,
});

export interface RequestLimitSettings {
  /** The limit of a method that has none of its own. */
  maxRequestBytes: number;
  /** Overrides: "<Service>/<Method>" or the full "/<package>.<Service>/<Method>" → bytes. */
  maxRequestBytesByMethod: Readonly<Record<string, number>>;
  /** grpc-js's own cap on any message: no limit is higher. */
  maxMessageBytes: number;
}

/** The largest request of each method, by full method name. */
export function requestLimits(settings: RequestLimitSettings): (method: string) => number {
  const overrides = new Map(Object.entries(settings.maxRequestBytesByMethod));
  return (method) => {
    // An override may name "/dispatcher.v1.ServerAgentService/RunServerScript" or "ServerAgentService/RunServerScript".
    const short = method.replace(/^\/(?:[a-z0-9_]+\.)*/, "");
    const limit = overrides.get(method) ?? overrides.get(short) ?? METHOD_MAX_REQUEST_BYTES[method] ?? settings.maxRequestBytes;
    return Math.min(limit, settings.maxMessageBytes);
  };
}
