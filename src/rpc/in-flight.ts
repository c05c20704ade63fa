// The set of RPCs a server is running, so that a graceful stop can wait for them and then cancel the stragglers.
import { SlotSet } from "../runtime/slot-table.js";

export interface InFlightCall {
  readonly method: string;
  /** Long-lived calls (server streams such as WatchJob) are cancelled as soon as a stop begins. */
  readonly longLived: boolean;
  abort(reason: Error): void;
}

export class InFlight {
  // A slot set, not a Set: an entry per call (../runtime/slot-table.ts says why).
  private readonly calls = new SlotSet<InFlightCall>();
  private idle: Array<() => void> = [];

  get size(): number {
    return this.calls.size;
  }

  add(call: InFlightCall): void {
    this.calls.add(call);
  }

  delete(call: InFlightCall): void {
    this.calls.delete(call);
    if (this.calls.size === 0) {
      const waiters = this.idle;
      this.idle = [];
      for (const wake of waiters) wake();
    }
  }

  /** Aborts the calls that match (all by default), e.g. the long-lived ones when a stop begins. */
  abort(reason: Error, which: (call: InFlightCall) => boolean = () => true): number {
    let n = 0;
    for (const call of [...this.calls]) {
      if (which(call)) {
        call.abort(reason);
        n++;
      }
    }
    return n;
  }

  /** Resolves true when no call is left, or false after timeoutMs with calls still running. */
  drain(timeoutMs: number): Promise<boolean> {
    if (this.calls.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.idle = this.idle.filter((w) => w !== wake);
        resolve(false);
      }, timeoutMs);
      this.idle.push(wake);
    });
  }
}
