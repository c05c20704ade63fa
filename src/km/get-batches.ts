// GetCredential calls that a KM client's callers make at the same moment (a worker's job slots), sent to KM as one
// BatchGetCredentials call: one call's transport, TLS records and server work instead of one per caller, with the
// row read and audit batch KM shares between concurrent calls anyway, and one channel seal for all the fields (each
// AES-GCM operation is a native object the young-generation collector must finalize: three per credential in KM, one
// in the client, made the larger part of both processes' collection pauses). A call made alone goes as GetCredential.
// Each call keeps its own deadline, cancellation and trace (KM traces its request in its caller's trace, and names
// that trace in the audit record) and succeeds or fails on its own — which is why this is not src/db/batcher.ts,
// whose items settle only with their batch; a KM without BatchGetCredentials (UNIMPLEMENTED) is then called once per
// request.
import { status as Code } from "@grpc/grpc-js";
import type { CallOptions } from "../client/calls.js";
import { DispatcherError } from "../client/errors.js";
import type { BatchGetCredentialsRequest, BatchGetCredentialsResponse, CredentialMetadata, GetCredentialRequest, GetCredentialResponse, SealedFields } from "../gen/proto/km/v1/km.js";

/** Requests in one BatchGetCredentials call at most: KM's bound (GET_BATCH_MAX). */
export const BATCH_MAX = 100;

export interface GetTransport {
  getCredential(request: GetCredentialRequest, options: CallOptions): Promise<GetCredentialResponse>;
  batchGetCredentials(request: BatchGetCredentialsRequest, options: CallOptions): Promise<BatchGetCredentialsResponse>;
}

/** A credential and its fields, unsealed. */
export interface Got {
  credential: CredentialMetadata;
  fields: Record<string, string>;
}

/** Opens what KM sealed for the channel; throws (a DomainError) when a seal does not open. */
export interface Unsealer {
  one(request: GetCredentialRequest, response: GetCredentialResponse): Got;
  /** A batch's fields: an entry per request, undefined where the request failed. */
  batch(requests: readonly GetCredentialRequest[], sealed: SealedFields): (Record<string, string> | undefined)[];
}

export type GetCall = (request: GetCredentialRequest, options: CallOptions) => Promise<Got>;

/** One caller's request, waiting for its answer. Settled once: by its answer, its deadline or its signal. */
class Pending {
  done = false;
  private readonly onAbort: (() => void) | undefined;

  constructor(
    readonly request: GetCredentialRequest,
    readonly options: CallOptions,
    /** Epoch milliseconds; Infinity when the call has none. */
    readonly deadline: number,
    private readonly resolveCall: (value: Got) => void,
    private readonly rejectCall: (reason: unknown) => void,
  ) {
    if (options.signal) {
      this.onAbort = () => this.reject(new DispatcherError(Code.CANCELLED, "cancelled by the caller"));
      options.signal.addEventListener("abort", this.onAbort, { once: true });
    }
  }

  /** The caller's W3C traceparent, or "". */
  traceparent(): string {
    return this.options.metadata?.traceparent ?? "";
  }

  resolve(value: Got): void {
    if (this.settle()) this.resolveCall(value);
  }

  reject(reason: unknown): void {
    if (this.settle()) this.rejectCall(reason);
  }

  private settle(): boolean {
    if (this.done) return false;
    this.done = true;
    if (this.onAbort) this.options.signal?.removeEventListener("abort", this.onAbort);
    return true;
  }
}

const badResponse = (): DispatcherError => new DispatcherError(Code.UNKNOWN, "KM's answer to a batch does not match its requests");

export function createGetBatches(transport: GetTransport, unseal: Unsealer, defaultDeadlineMs: number): GetCall {
  let queue: Pending[] = [];
  let batchesServed = true;

  const alone = (p: Pending): void => {
    // The deadline the caller gave when it called, not one restarted now (after a batch that found no such method).
    const options = p.deadline === Infinity ? p.options : { ...p.options, deadlineMs: Math.max(1, p.deadline - Date.now()) };
    transport.getCredential(p.request, options).then(
      (res) => p.resolve(unseal.one(p.request, res)),
      (err: unknown) => p.reject(err),
    ).catch((err: unknown) => p.reject(err));
  };

  const send = (batch: Pending[]): void => {
    const live = batch.filter((p) => !p.done);
    if (live.length < 2 || !batchesServed) {
      live.forEach(alone);
      return;
    }
    // The call lasts until the latest deadline; earlier ones end their own request on time.
    const deadline = Math.max(...live.map((p) => p.deadline));
    const timers = live.filter((p) => p.deadline < deadline).map((p) => setTimeout(() => p.reject(new DispatcherError(Code.DEADLINE_EXCEEDED, "deadline exceeded")), p.deadline - Date.now()));
    const first = live[0] as Pending;
    const request = { items: live.map((p) => ({ request: p.request, traceparent: p.traceparent() })) };
    transport
      .batchGetCredentials(request, { deadlineMs: deadline === Infinity ? 0 : Math.max(1, deadline - Date.now()), ...(first.options.metadata ? { metadata: first.options.metadata } : {}) })
      .then(
        (res) => {
          if (res.results.length !== live.length) throw badResponse();
          const fields = res.sealedFields ? unseal.batch(live.map((p) => p.request), res.sealedFields) : [];
          live.forEach((p, i) => {
            const r = res.results[i]?.result;
            const f = fields[i];
            if (r?.$case === "credential" && f) p.resolve({ credential: r.value, fields: f });
            else if (r?.$case === "error") p.reject(DispatcherError.fromStatus(r.value));
            else p.reject(badResponse());
          });
        },
        (err: unknown) => {
          if (err instanceof DispatcherError && err.code === Code.UNIMPLEMENTED) {
            batchesServed = false;
            live.filter((p) => !p.done).forEach(alone);
            return;
          }
          throw err;
        },
      )
      .catch((err: unknown) => live.forEach((p) => p.reject(err)))
      .finally(() => timers.forEach(clearTimeout));
  };

  const flush = (): void => {
    const all = queue;
    queue = [];
    for (let at = 0; at < all.length; at += BATCH_MAX) send(all.slice(at, at + BATCH_MAX));
  };

  return (request, options) =>
    new Promise<Got>((resolve, reject) => {
      if (options.signal?.aborted) return reject(new DispatcherError(Code.CANCELLED, "cancelled before the call started"));
      const deadlineMs = options.deadlineMs ?? defaultDeadlineMs; // 0: none
      queue.push(new Pending(request, options, deadlineMs > 0 ? Date.now() + deadlineMs : Infinity, resolve, reject));
      // Calls made in this tick (its synchronous code and microtasks) go together.
      if (queue.length === 1) process.nextTick(flush);
    });
}
