// The client channel's gRPC service config: retry on UNAVAILABLE only for methods whose proto declares
// idempotency_level NO_SIDE_EFFECTS or IDEMPOTENT (read from the descriptor set, so new methods follow their proto).
import { readFileSync } from "node:fs";
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema, MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";

export interface RetryOptions {
  /** Attempts including the first (grpc-js caps this at 5). */
  maxAttempts: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
  backoffMultiplier: number;
}

export const DEFAULT_RETRY: RetryOptions = { maxAttempts: 4, initialBackoffMs: 100, maxBackoffMs: 2_000, backoffMultiplier: 2 };

/** Where `npm run generate` writes the descriptor set of proto/ (shipped with the package). */
export const DESCRIPTORS_URL = new URL("../gen/descriptors.binpb", import.meta.url);

export interface MethodName {
  /** Fully-qualified service name, e.g. "dispatcher.v1.JobService". */
  service: string;
  method: string;
}

/** Methods of the descriptor set safe to retry: idempotency_level NO_SIDE_EFFECTS or IDEMPOTENT. */
export function idempotentMethods(descriptorSet: Uint8Array): MethodName[] {
  const out: MethodName[] = [];
  for (const file of fromBinary(FileDescriptorSetSchema, descriptorSet).file) {
    for (const service of file.service) {
      const fqn = file.package ? `${file.package}.${service.name}` : service.name;
      for (const method of service.method) {
        const level = method.options?.idempotencyLevel ?? MethodOptions_IdempotencyLevel.IDEMPOTENCY_UNKNOWN;
        if (level === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS || level === MethodOptions_IdempotencyLevel.IDEMPOTENT) out.push({ service: fqn, method: method.name });
      }
    }
  }
  return out;
}

/** The JSON for the `grpc.service_config` channel option: a retry policy on UNAVAILABLE for `methods` only. */
export function retryServiceConfig(methods: MethodName[], retry: RetryOptions): string {
  const seconds = (ms: number): string => `${(Math.max(1, ms) / 1000).toFixed(3)}s`;
  const methodConfig =
    methods.length === 0
      ? []
      : [
          {
            name: methods.map((m) => ({ service: m.service, method: m.method })),
            retryPolicy: {
              maxAttempts: Math.max(2, retry.maxAttempts),
              initialBackoff: seconds(retry.initialBackoffMs),
              maxBackoff: seconds(retry.maxBackoffMs),
              backoffMultiplier: retry.backoffMultiplier,
              retryableStatusCodes: ["UNAVAILABLE"],
            },
          },
        ];
  return JSON.stringify({ methodConfig });
}

export function loadDescriptorSet(from: URL | string = DESCRIPTORS_URL): Uint8Array {
  return readFileSync(from);
}
