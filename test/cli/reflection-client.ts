// A generic gRPC client driven by server reflection, as grpcurl works: it knows no .proto of the dispatcher, asks the
// server for its services and their file descriptors, and builds callable stubs from what it is told.
import { createRequire } from "node:module";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { credentials, loadPackageDefinition, Metadata, type Client, type ClientDuplexStream, type GrpcObject, type ServiceClientConstructor, type ServiceError } from "@grpc/grpc-js";
import { loadFileDescriptorSetFromBuffer, loadSync } from "@grpc/proto-loader";

const require = createRequire(import.meta.url);
const REFLECTION_PROTO = require.resolve("@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto");
const LOADER_OPTIONS = { longs: String, enums: String, defaults: true, oneofs: true } as const;

interface ReflectionResponse {
  listServicesResponse?: { service: Array<{ name: string }> };
  fileDescriptorResponse?: { fileDescriptorProto: Buffer[] };
  errorResponse?: { errorCode: number; errorMessage: string };
}
type ReflectionStub = Client & { ServerReflectionInfo(metadata: Metadata): ClientDuplexStream<Record<string, unknown>, ReflectionResponse> };

function bearer(token: string | undefined, traceparent?: string): Metadata {
  const metadata = new Metadata();
  if (token) metadata.set("authorization", `Bearer ${token}`);
  if (traceparent) metadata.set("traceparent", traceparent);
  return metadata;
}

/** One request on a grpc.reflection.v1 ServerReflectionInfo stream. */
export async function reflect(address: string, request: Record<string, unknown>, token?: string): Promise<ReflectionResponse> {
  const pkg = loadPackageDefinition(loadSync(REFLECTION_PROTO, LOADER_OPTIONS)) as unknown as {
    grpc: { reflection: { v1: { ServerReflection: new (address: string, creds: ReturnType<typeof credentials.createInsecure>) => ReflectionStub } } };
  };
  const client = new pkg.grpc.reflection.v1.ServerReflection(address, credentials.createInsecure());
  try {
    return await new Promise<ReflectionResponse>((resolve, reject) => {
      const call = client.ServerReflectionInfo(bearer(token));
      call.on("data", (r: ReflectionResponse) => {
        resolve(r);
        call.end();
      });
      call.on("error", (e: ServiceError) => reject(e));
      call.write({ host: "", ...request });
    });
  } finally {
    client.close();
  }
}

export async function listServices(address: string, token?: string): Promise<string[]> {
  const r = await reflect(address, { listServices: "*" }, token);
  if (!r.listServicesResponse) throw new Error(`no service list: ${JSON.stringify(r.errorResponse)}`);
  return r.listServicesResponse.service.map((s) => s.name).sort();
}

/** The file descriptors that define `symbol`, with their imports, as the server returns them. */
export async function filesContaining(address: string, symbol: string, token?: string): Promise<FileDescriptorProto[]> {
  const r = await reflect(address, { fileContainingSymbol: symbol }, token);
  if (!r.fileDescriptorResponse) throw new Error(`no descriptor for ${symbol}: ${JSON.stringify(r.errorResponse)}`);
  return r.fileDescriptorResponse.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, Uint8Array.from(b)));
}

/**
 * Calls the unary `method` of `service` (fully qualified) with a JSON-like request, using only what reflection
 * tells: the returned descriptors become a package definition and a client stub, as in grpcurl.
 */
export async function callUnaryByReflection(
  address: string,
  service: string,
  method: string,
  request: Record<string, unknown>,
  /** reflectionToken: the key reflection is asked with, when the call itself goes with another (or none). */
  options: { token?: string; traceparent?: string; reflectionToken?: string } = {},
): Promise<Record<string, unknown>> {
  const files = await filesContaining(address, service, options.reflectionToken ?? options.token);
  const set = toBinary(FileDescriptorSetSchema, create(FileDescriptorSetSchema, { file: files }));
  const pkg = loadPackageDefinition(loadFileDescriptorSetFromBuffer(Buffer.from(set), LOADER_OPTIONS));
  const Stub = service.split(".").reduce<unknown>((node, part) => (node as GrpcObject | undefined)?.[part], pkg) as ServiceClientConstructor | undefined;
  if (!Stub) throw new Error(`reflection described no service ${service}`);
  const client = new Stub(address, credentials.createInsecure());
  try {
    const fn = (client as unknown as Record<string, (req: unknown, md: Metadata, cb: (err: ServiceError | null, res: Record<string, unknown>) => void) => void>)[method];
    if (typeof fn !== "function") throw new Error(`${service} has no method ${method}`);
    return await new Promise((resolve, reject) => fn.call(client, request, bearer(options.token, options.traceparent), (err, res) => (err ? reject(err) : resolve(res))));
  } finally {
    client.close();
  }
}
