// Per-principal resource limits (OWASP API4) the adapter applies once it knows the caller: a token bucket on the rate of
// calls, and caps on the calls and on the server streams (WatchJob) a principal has open at once. Going over answers
// RESOURCE_EXHAUSTED with RetryInfo; each principal has its own bucket and counters, so one caller's flood never
// takes another's share. Service principals (workers, the dispatcher itself) are not limited: they are ours.
// A refusal costs the server a stream and a status however cheap the check, so a flood's cost is bounded by how many
// calls it makes: a rate refusal is held (a timer, up to `holdMs`) until about the time its RetryInfo names, which
// throttles a caller that ignores RetryInfo to its own calls in flight per hold, and costs a polite caller nothing.
import { ResourceExhaustedError } from "../errors.js";
import type { Principal } from "../iam/principal.js";

export interface LimitSettings {
  /** Calls per second a principal may sustain; 0: no rate limit. */
  ratePerSecond: number;
  /** Calls a principal may make at once after being idle (the bucket's size). */
  burst: number;
  /** Unary calls a principal may have in flight; 0: no cap. */
  maxConcurrentCalls: number;
  /** Server streams a principal may have open; 0: no cap. */
  maxOpenStreams: number;
  /** Longest a rate refusal is held before it is answered; 0: answered at once. */
  holdMs?: number;
  /** Rate refusals held at once per principal; more are answered at once. */
  maxHeld?: number;
}

/** How long a caller turned away by a concurrency cap is told to wait: about one call's time. */
const CONCURRENCY_RETRY_MS = 100;
/** Streams last long; the caller should wait longer before opening another. */
const STREAM_RETRY_MS = 1_000;
/** Above this many remembered principals, idle ones (full bucket, nothing open or held) are forgotten. */
const SWEEP_ABOVE = 10_000;
/** A principal's limit refusals make one request-log line per this long, carrying how many it stands for. */
const REFUSAL_LOG_INTERVAL_MS = 1_000;
/** The shortest retry delay a refusal names: RetryInfo is always there and never says "now". */
const MIN_RETRY_MS = 1;

/**
 * A refusal by these limits. `retryAt` (on the limits' clock) is when the caller's retry should find room; `holdMs`
 * is how long the adapter may hold the answer first (0: answer at once). Call `answer()` once, when replying: it gives
 * the held slot back and returns the error with the retry delay as of then (itself when it was not held).
 */
export class LimitRefusal extends ResourceExhaustedError {
  readonly retryAt: number;
  private answered = false;

  constructor(
    message: string,
    reason: string,
    metadata: Record<string, string>,
    issuedAt: number,
    waitMs: number,
    readonly holdMs: number,
    private readonly now: () => number,
    private readonly unhold: () => void = () => {},
  ) {
    super(message, reason, Math.max(MIN_RETRY_MS, waitMs), metadata);
    this.retryAt = issuedAt + waitMs;
  }

  answer(): LimitRefusal {
    if (!this.answered) {
      this.answered = true;
      this.unhold();
    }
    if (this.holdMs === 0) return this;
    const t = this.now();
    return withoutStack(() => new LimitRefusal(this.message, this.reason, this.metadata, t, this.retryAt - t, 0, this.now));
  }
}

/**
 * Makes a refusal without capturing a stack trace: it is an answer to a caller, never a bug to trace back, and a flood
 * makes thousands a second.
 */
function withoutStack<T>(make: () => T): T {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return make();
  } finally {
    Error.stackTraceLimit = limit;
  }
}

interface Usage {
  tokens: number;
  refilledAt: number;
  calls: number;
  streams: number;
  /** The latest retry time promised to a refused call: each next refusal is told one token's time later. */
  promisedUntil: number;
  held: number;
  loggedAt: number;
  unlogged: number;
}

export class PrincipalLimits {
  private readonly usage = new Map<string, Usage>();
  private readonly holdMs: number;
  private readonly maxHeld: number;

  constructor(
    private readonly settings: LimitSettings,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.holdMs = settings.holdMs ?? 0;
    this.maxHeld = settings.maxHeld ?? 0;
  }

  /**
   * Admits one call of `principal` (a server stream when `stream`): takes a token and a slot, or throws LimitRefusal
   * with the time to wait. The returned function gives the slot back; call it once.
   */
  admit(principal: Pick<Principal, "id" | "kind">, stream: boolean): () => void {
    if (principal.kind === "service") return () => {};
    const u = this.entry(principal.id);
    const { ratePerSecond, burst, maxConcurrentCalls, maxOpenStreams } = this.settings;
    if (stream ? maxOpenStreams > 0 && u.streams >= maxOpenStreams : maxConcurrentCalls > 0 && u.calls >= maxConcurrentCalls) {
      const what = stream ? `${maxOpenStreams} open streams` : `${maxConcurrentCalls} calls in flight`;
      const retryMs = stream ? STREAM_RETRY_MS : CONCURRENCY_RETRY_MS;
      throw withoutStack(() => new LimitRefusal(`too many concurrent calls: at most ${what} per caller`, stream ? "TOO_MANY_STREAMS" : "TOO_MANY_CONCURRENT_CALLS", { limit: String(stream ? maxOpenStreams : maxConcurrentCalls) }, this.now(), retryMs, 0, this.now));
    }
    if (ratePerSecond > 0) {
      const t = this.now();
      u.tokens = Math.min(Math.max(burst, 1), u.tokens + ((t - u.refilledAt) / 1000) * ratePerSecond);
      u.refilledAt = t;
      if (u.tokens < 1) throw this.rateRefusal(u, t);
      u.tokens -= 1;
    }
    if (stream) u.streams++;
    else u.calls++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (stream) u.streams--;
      else u.calls--;
    };
  }

  /**
   * For the request log, on each limit refusal of `principalId`: 0 while its refusals are being summed, else the
   * number of refusals (this one included) its next line stands for — at most one line per principal per second.
   */
  refusalsToLog(principalId: string): number {
    const u = this.usage.get(principalId);
    if (!u) return 1;
    u.unlogged++;
    const t = this.now();
    if (t - u.loggedAt < REFUSAL_LOG_INTERVAL_MS) return 0;
    const n = u.unlogged;
    u.unlogged = 0;
    u.loggedAt = t;
    return n;
  }

  /** Principals currently remembered (for tests of the sweep). */
  get size(): number {
    return this.usage.size;
  }

  /** Rate refusals held now across all principals (for tests). */
  get held(): number {
    let n = 0;
    for (const u of this.usage.values()) n += u.held;
    return n;
  }

  /**
   * Refused callers are spread out: each is told to come back one token's time after the previous one, so callers that
   * honour RetryInfo return at the rate, not all at once — but never later than the bucket takes to fill.
   */
  private rateRefusal(u: Usage, t: number): LimitRefusal {
    const { ratePerSecond, burst } = this.settings;
    const perToken = 1000 / ratePerSecond;
    const horizon = Math.max(1000, (Math.max(burst, 1) / ratePerSecond) * 1000);
    const waitMs = Math.min(Math.max((1 - u.tokens) * perToken, u.promisedUntil + perToken - t), horizon);
    u.promisedUntil = t + waitMs;
    const hold = this.holdMs > 0 && u.held < this.maxHeld ? Math.min(this.holdMs, waitMs) : 0;
    let unhold: (() => void) | undefined;
    if (hold > 0) {
      u.held++;
      unhold = () => void u.held--;
    }
    return withoutStack(() => new LimitRefusal(`rate limit exceeded: at most ${ratePerSecond} calls per second per caller`, "RATE_LIMITED", { limit: String(ratePerSecond) }, t, waitMs, hold, this.now, unhold));
  }

  private entry(id: string): Usage {
    let u = this.usage.get(id);
    if (!u) {
      if (this.usage.size >= SWEEP_ABOVE) this.sweep();
      u = { tokens: Math.max(this.settings.burst, 1), refilledAt: this.now(), calls: 0, streams: 0, promisedUntil: -Infinity, held: 0, loggedAt: -Infinity, unlogged: 0 };
      this.usage.set(id, u);
    }
    return u;
  }

  private sweep(): void {
    const t = this.now();
    const { ratePerSecond, burst } = this.settings;
    for (const [id, u] of this.usage) {
      const full = ratePerSecond <= 0 || u.tokens + ((t - u.refilledAt) / 1000) * ratePerSecond >= burst;
      if (full && u.calls === 0 && u.streams === 0 && u.held === 0) this.usage.delete(id);
    }
  }
}
