// Per-principal resource limits (OWASP API4) the adapter applies once it knows the caller: a token bucket on the rate of
// calls, and caps on the calls and on the server streams (WatchJob) a principal has open at once. Going over answers
// RESOURCE_EXHAUSTED with RetryInfo; each principal has its own bucket and counters, so one caller's flood never
// takes another's share. Service principals (workers, the dispatcher itself) are not limited: they are ours.
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
}

/** How long a caller turned away by a concurrency cap is told to wait: about one call's time. */
const CONCURRENCY_RETRY_MS = 100;
/** Streams last long; the caller should wait longer before opening another. */
const STREAM_RETRY_MS = 1_000;
/** Above this many remembered principals, idle ones (full bucket, nothing open) are forgotten. */
const SWEEP_ABOVE = 10_000;

interface Usage {
  tokens: number;
  refilledAt: number;
  calls: number;
  streams: number;
}

export class PrincipalLimits {
  private readonly usage = new Map<string, Usage>();

  constructor(
    private readonly settings: LimitSettings,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /**
   * Admits one call of `principal` (a server stream when `stream`): takes a token and a slot, or throws
   * ResourceExhaustedError with the time to wait. The returned function gives the slot back; call it once.
   */
  admit(principal: Pick<Principal, "id" | "kind">, stream: boolean): () => void {
    if (principal.kind === "service") return () => {};
    const u = this.entry(principal.id);
    const { ratePerSecond, burst, maxConcurrentCalls, maxOpenStreams } = this.settings;
    if (stream ? maxOpenStreams > 0 && u.streams >= maxOpenStreams : maxConcurrentCalls > 0 && u.calls >= maxConcurrentCalls) {
      const what = stream ? `${maxOpenStreams} open streams` : `${maxConcurrentCalls} calls in flight`;
      throw new ResourceExhaustedError(`too many concurrent calls: at most ${what} per caller`, stream ? "TOO_MANY_STREAMS" : "TOO_MANY_CONCURRENT_CALLS", stream ? STREAM_RETRY_MS : CONCURRENCY_RETRY_MS, { limit: String(stream ? maxOpenStreams : maxConcurrentCalls) });
    }
    if (ratePerSecond > 0) {
      const t = this.now();
      u.tokens = Math.min(Math.max(burst, 1), u.tokens + ((t - u.refilledAt) / 1000) * ratePerSecond);
      u.refilledAt = t;
      if (u.tokens < 1) {
        const waitMs = ((1 - u.tokens) / ratePerSecond) * 1000;
        throw new ResourceExhaustedError(`rate limit exceeded: at most ${ratePerSecond} calls per second per caller`, "RATE_LIMITED", waitMs, { limit: String(ratePerSecond) });
      }
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

  /** Principals currently remembered (for tests of the sweep). */
  get size(): number {
    return this.usage.size;
  }

  private entry(id: string): Usage {
    let u = this.usage.get(id);
    if (!u) {
      if (this.usage.size >= SWEEP_ABOVE) this.sweep();
      u = { tokens: Math.max(this.settings.burst, 1), refilledAt: this.now(), calls: 0, streams: 0 };
      this.usage.set(id, u);
    }
    return u;
  }

  private sweep(): void {
    const t = this.now();
    const { ratePerSecond, burst } = this.settings;
    for (const [id, u] of this.usage) {
      const full = ratePerSecond <= 0 || u.tokens + ((t - u.refilledAt) / 1000) * ratePerSecond >= burst;
      if (full && u.calls === 0 && u.streams === 0) this.usage.delete(id);
    }
  }
}
