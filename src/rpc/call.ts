// One call's lifetime in the adapter: its deadline and cancellation (one AbortSignal), admission and limits, the
// in-flight entry held for a graceful stop, the single reply with its status, and the request log line.
import { performance } from "node:perf_hooks";
import { status as Code, type Metadata, type ServerReadableStream, type ServerUnaryCall, type ServerWritableStream } from "@grpc/grpc-js";
import { trace } from "@opentelemetry/api";
import { CancelledError, DeadlineExceededError, DomainError, UnavailableError } from "../errors.js";
import { lazyChild, type Logger, type RequestLogEntry } from "../log.js";
import type { Authenticate, AuthenticatePeer, Principal } from "../iam/principal.js";
import { actingAs } from "../audit/actor.js";
import { recordRpc } from "../telemetry/metrics.js";
import { admit } from "./admit.js";
import type { InFlight, InFlightCall } from "./in-flight.js";
import { LimitRefusal, type PrincipalLimits } from "./limits.js";
import { peerAuthOf } from "./peer-auth.js";
import { checkEnvelope } from "./request-body.js";
import { codeName, toRpcStatus, type RpcStatus } from "./status.js";

/** What a handler knows about its call besides the request. */
export interface CallContext {
  /** Full method name, e.g. "/dispatcher.v1.JobService/GetJob". */
  readonly method: string;
  /** Aborted on client cancel, deadline, or server shutdown; `signal.reason` is the matching DomainError. */
  readonly signal: AbortSignal;
  /** The client's deadline; for a unary call without one, now + server.defaultDeadlineMs (streams: none). */
  readonly deadline: Date;
  readonly principal: Readonly<Principal>;
  readonly metadata: Metadata;
  readonly peer: string;
  /** Child logger carrying method and trace id. */
  readonly log: Logger;
  /** W3C trace id of the call ("" when not traced). */
  readonly traceId: string;
  /** Milliseconds left before the deadline (≥ 0): pass it on to DB, NATS, KM and driver calls. */
  remainingMs(): number;
}

/** What the adapter needs from the server that hosts it. */
export interface AdapterRuntime {
  readonly log: Logger;
  readonly requestLog?: { write(entry: RequestLogEntry): void } | undefined;
  readonly authenticate: Authenticate;
  /** Identifies callers by their transport (mTLS client certificate) before any bearer token is looked at. */
  readonly authenticatePeer?: AuthenticatePeer | undefined;
  /** Applied to calls that arrive without a deadline; 0 means none. */
  readonly defaultDeadlineMs: number;
  /** Largest request metadata (keys and values, in bytes) a call may carry; 0 means no limit of our own. */
  readonly maxMetadataBytes?: number | undefined;
  /** Per-principal rate and concurrency limits; none when absent. */
  readonly limits?: PrincipalLimits | undefined;
  readonly inFlight: InFlight;
  /** True once a graceful stop began: new calls get UNAVAILABLE. */
  isDraining(): boolean;
  /** While it returns an error, new calls get it at once (a store the server cannot work without is known to be gone). */
  refusal?(): Error | null;
}

const MAX_TIMER_MS = 2 ** 31 - 1;
const FAR_FUTURE = 8.64e15;
/**
 * How close to our deadline a client's reset still counts as its deadline. Ours counts from when the request was read
 * and the client's from when it was sent, so the client's reset reaches us early by the time the request waited to be
 * read: on a busy process that exceeded 20 ms.
 */
const DEADLINE_SLACK_MS = 100;

/** One call's lifetime: signal, deadline timer, in-flight entry, the single reply and its request log line. */
export class Call implements InFlightCall {
  readonly started = performance.now();
  readonly peer: string;
  readonly deadline: Date;
  readonly traceId: string;
  readonly log: Logger;
  principal: Readonly<Principal> | null = null;
  replied = false;
  private timer: NodeJS.Timeout | undefined;
  /** Why the call was aborted (deadline, client cancel, shutdown); undefined while it runs. */
  private abortReason: DomainError | undefined;
  /**
   * Made when something first asks for the signal: most unary handlers never do, and an AbortController with its
   * AbortSignal (an EventTarget) was the largest single allocation of the adapter on KM's GetCredential path.
   */
  private controller: AbortController | undefined;
  // grpc-js ends a call whose client deadline passed (and the client resets it) at about the moment our own timer
  // fires; a cancellation that close to the deadline is the deadline (DEADLINE_SLACK_MS).
  private readonly onCancelled = (): void =>
    this.abort(Date.now() >= this.deadline.getTime() - DEADLINE_SLACK_MS ? new DeadlineExceededError() : new CancelledError("cancelled by the client"));

  constructor(
    private readonly runtime: AdapterRuntime,
    readonly method: string,
    readonly longLived: boolean,
    private readonly surface: ServerUnaryCall<unknown, unknown> | ServerWritableStream<unknown, unknown> | ServerReadableStream<unknown, unknown>,
    private readonly reply: (status: RpcStatus | null) => void,
  ) {
    this.peer = surface.getPeer();
    this.traceId = traceIdOf(surface.metadata);
    this.log = lazyChild(runtime.log, { method, trace_id: this.traceId });
    const given = surface.getDeadline();
    let at = given instanceof Date ? given.getTime() : given;
    // Server streams (WatchJob) last as long as what they watch: only unary calls get the default deadline.
    if (!Number.isFinite(at) && !longLived && runtime.defaultDeadlineMs > 0) at = Date.now() + runtime.defaultDeadlineMs;
    this.deadline = new Date(Number.isFinite(at) ? at : FAR_FUTURE);
    const wait = at - Date.now();
    if (wait <= MAX_TIMER_MS) this.timer = setTimeout(() => this.abort(new DeadlineExceededError()), Math.max(0, wait));
    (surface as NodeJS.EventEmitter).on("cancelled", this.onCancelled);
  }

  get metadata(): Metadata {
    return this.surface.metadata;
  }

  /** Aborted on client cancel, deadline or shutdown, with the matching DomainError as its reason. */
  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.abortReason) this.controller.abort(this.abortReason);
    }
    return this.controller.signal;
  }

  abort(reason: DomainError): void {
    if (this.abortReason) return;
    this.abortReason = reason;
    this.controller?.abort(reason);
    // Deadline and shutdown answer at once; the handler's late result is dropped.
    this.finish(reason);
  }

  /** Sends the one reply for `outcome` (null: OK) and writes the request log line. Later calls are ignored. */
  finish(outcome: unknown): void {
    if (this.replied) return;
    this.replied = true;
    let status: RpcStatus | null = null;
    if (outcome !== null) {
      // A handler that fails because its signal fired (a driver's AbortError, say) reports why the signal fired.
      const err = this.abortReason && !(outcome instanceof DomainError) ? this.abortReason : outcome;
      status = toRpcStatus(err);
      if (!(err instanceof DomainError)) this.log.error({ err }, `unexpected error; replied ${codeName(status.code)}`);
    }
    this.reply(status);
    const durationMs = performance.now() - this.started;
    recordRpc(this.method, status?.code ?? Code.OK, durationMs);
    if (!this.runtime.requestLog) return;
    // A flood's refusals are counted by the metric above; the request log gets a line per principal per second at most.
    const refusals = outcome instanceof LimitRefusal && this.principal && this.runtime.limits ? this.runtime.limits.refusalsToLog(this.principal.id) : 1;
    if (refusals === 0) return;
    this.runtime.requestLog.write({
      time: new Date(),
      method: this.method,
      peer: this.peer,
      principal: this.principal?.id ?? "-",
      code: codeName(status?.code ?? Code.OK),
      durationMs,
      traceId: this.traceId,
      ...(outcome instanceof LimitRefusal ? { refusals } : {}),
    });
  }

  /**
   * Answers a limit refusal, after holding it (a timer) for the time it allows: a caller that ignores RetryInfo waits
   * anyway, so its calls in flight, not its eagerness, set how many it makes. At most half the time left before the
   * deadline (the answer must reach the caller in time), and not at all once the server is stopping.
   */
  private async refuse(refusal: LimitRefusal): Promise<void> {
    const holdMs = this.runtime.isDraining() ? 0 : Math.min(refusal.holdMs, (this.deadline.getTime() - Date.now()) / 2);
    if (holdMs > 0 && !this.abortReason) {
      const signal = this.signal;
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          signal.removeEventListener("abort", done);
          resolve();
        };
        const timer = setTimeout(done, holdMs);
        signal.addEventListener("abort", done);
      });
    }
    // The retry delay it names is what is left of the wait after the hold.
    this.finish(refusal.answer());
  }

  /** Runs the handler with the in-flight entry held until it settles (even after an early reply). */
  async run(body: (ctx: CallContext) => Promise<void>): Promise<void> {
    const refused = this.runtime.isDraining() ? new UnavailableError("server is shutting down", "SHUTTING_DOWN") : this.runtime.refusal?.();
    if (refused) {
      this.close();
      this.finish(refused);
      return;
    }
    this.runtime.inFlight.add(this);
    let release: (() => void) | undefined;
    try {
      checkEnvelope(this.runtime, this.surface.metadata, "request" in this.surface ? this.surface.request : undefined);
      const auth = this.runtime.authenticatePeer ? peerAuthOf(this.surface) : null;
      // Limits apply as soon as the caller is known, before the permission check: a flood of denied calls is a flood.
      this.principal = await admit(this.runtime, this.method, this.surface.metadata, this.peer, auth, (p) => {
        this.principal = p;
        release = this.runtime.limits?.admit(p, this.longLived);
      });
      if (this.abortReason) throw this.abortReason;
      // The handler runs as its caller: what it changes is attributed to them in the audit trail.
      await actingAs({ principal: this.principal.id, traceId: this.traceId }, () => body(this.context(this.principal as Readonly<Principal>)));
    } catch (err) {
      if (err instanceof LimitRefusal) await this.refuse(err);
      else this.finish(err);
    } finally {
      release?.();
      this.close();
      this.runtime.inFlight.delete(this);
    }
  }

  private context(principal: Readonly<Principal>): CallContext {
    return new HandlerContext(this, principal);
  }

  private close(): void {
    clearTimeout(this.timer);
    (this.surface as NodeJS.EventEmitter).removeListener("cancelled", this.onCancelled);
  }
}

/**
 * What a handler gets. A class, not an object literal with a `signal` getter: a literal whose accessor closes over the
 * call gets a hidden class of its own per call, allocated where only full collections look, and that hidden class
 * keeps the call's whole object graph alive through every minor collection (a fifth of all a KM call allocates was
 * promoted that way).
 */
class HandlerContext implements CallContext {
  readonly method: string;
  readonly deadline: Date;
  readonly metadata: Metadata;
  readonly peer: string;
  readonly log: Logger;
  readonly traceId: string;

  constructor(
    private readonly call: Call,
    readonly principal: Readonly<Principal>,
  ) {
    this.method = call.method;
    this.deadline = call.deadline;
    this.metadata = call.metadata;
    this.peer = call.peer;
    this.log = call.log;
    this.traceId = call.traceId;
  }

  get signal(): AbortSignal {
    return this.call.signal;
  }

  remainingMs(): number {
    return Math.max(0, this.deadline.getTime() - Date.now());
  }
}

function traceIdOf(metadata: Metadata): string {
  const active = trace.getActiveSpan()?.spanContext().traceId;
  if (active && !/^0+$/.test(active)) return active;
  const header = metadata.get("traceparent")[0];
  const m = typeof header === "string" ? /^[\da-f]{2}-([\da-f]{32})-[\da-f]{16}-[\da-f]{2}$/.exec(header) : null;
  return m?.[1] ?? "";
}
