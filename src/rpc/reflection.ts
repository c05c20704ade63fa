// gRPC server reflection for the services a server actually serves (plus health), from src/gen/descriptors.binpb.
// Every reflection stream must authenticate (system.read); it is on by default in development, off in production.
import { readFileSync } from "node:fs";
import type { handleBidiStreamingCall, Server, UntypedHandleCall, UntypedServiceImplementation } from "@grpc/grpc-js";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { loadSync, type PackageDefinition } from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";
import { protoPath as healthProtoPath } from "grpc-health-check";
import type { AdapterRuntime } from "./adapter.js";
import { admit } from "./admit.js";
import { toRpcStatus } from "./status.js";

export const HEALTH_SERVICE = "grpc.health.v1.Health";

/** Where `npm run generate` writes the descriptor set of proto/ (with imports). */
export const DESCRIPTORS_URL = new URL("../gen/descriptors.binpb", import.meta.url);

export interface ReflectionOptions {
  /** Fully-qualified names of the served services; only these (and health) are listed. */
  services: string[];
  /** Require authentication and the method's permission on each reflection stream. */
  authenticated: boolean;
  runtime: Pick<AdapterRuntime, "authenticate" | "log">;
  descriptorSet?: URL | string;
}

export function addReflection(server: Pick<Server, "addService">, options: ReflectionOptions): void {
  const served = descriptorPackage(readFileSync(options.descriptorSet ?? DESCRIPTORS_URL));
  const health = loadSync(healthProtoPath);
  const reflection = new ReflectionService({ ...served, ...health }, { services: [...options.services, HEALTH_SERVICE] });
  reflection.addToServer({
    addService(definition, implementation) {
      if (!options.authenticated) return server.addService(definition, implementation);
      const guarded: UntypedServiceImplementation = {};
      for (const [key, handler] of Object.entries(implementation)) {
        const method = definition[key]?.path ?? key;
        guarded[key] = guard(method, handler, options.runtime);
      }
      server.addService(definition, guarded);
    },
  });
}

/**
 * The descriptor set as the package definition @grpc/reflection reads (it only uses `fileDescriptorProtos`).
 * Why not proto-loader's loadFileDescriptorSetFromBuffer: it merges the files of one package into one file and
 * drops their imports, which reflection clients such as grpcurl cannot resolve. buf's files are kept 1:1 here.
 */
function descriptorPackage(descriptorSet: Uint8Array): PackageDefinition {
  const files = fromBinary(FileDescriptorSetSchema, descriptorSet).file.map((f) => Buffer.from(toBinary(FileDescriptorProtoSchema, f)));
  return { "dispatcher.descriptors": { format: "Protocol Buffer 3 FileDescriptorProto", type: {}, fileDescriptorProtos: files } } as unknown as PackageDefinition;
}

/** Wraps a raw (bidi) handler so that it only runs for a caller holding the method's permission. */
function guard(method: string, handler: UntypedHandleCall, runtime: ReflectionOptions["runtime"]): UntypedHandleCall {
  const run = handler as handleBidiStreamingCall<unknown, unknown>;
  const guarded: handleBidiStreamingCall<unknown, unknown> = (call) => {
    admit(runtime, method, call.metadata, call.getPeer()).then(
      () => run(call),
      (err: unknown) => call.emit("error", toRpcStatus(err)),
    );
  };
  return guarded;
}
