// Health that tells the truth about a store the server cannot work without: a dispatcher whose database does not answer
// reports NOT_SERVING (grpc.health.v1), so that a load balancer or an orchestrator's readiness probe sends callers to a
// replica that can serve them; calls that still arrive get UNAVAILABLE as before. It turns SERVING again at the first
// probe that succeeds.
import type { Logger } from "../log.js";

export interface StoreHealthOptions {
  /** What the probe reaches, for the reason and the log: "the provisioning database". */
  name: string;
  /** One cheap round trip (`SELECT 1`); throws when the store does not answer. */
  probe: () => Promise<void>;
  /** Called with the NOT_SERVING reason when the store is lost, and with null when it answers again. */
  onChange: (reason: string | null) => void;
  log: Pick<Logger, "info">;
  /** Pause between probes (default 1 s). */
  everyMs?: number;
  /** A probe not answered within this long fails (default 2 s): a node that hangs is as useless as one that is gone. */
  timeoutMs?: number;
  /** Failed probes in a row before NOT_SERVING (default 2): one slow answer under load does not flap the health. */
  failAfter?: number;
}

export interface StoreHealth {
  /** Whether the last verdict was "unavailable". */
  readonly down: boolean;
  stop(): void;
}

export function watchStoreHealth(options: StoreHealthOptions): StoreHealth {
  const everyMs = options.everyMs ?? 1_000;
  const timeoutMs = options.timeoutMs ?? 2_000;
  const failAfter = Math.max(1, options.failAfter ?? 2);
  let failures = 0;
  let down = false;
  let since = 0;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;

  const probeOnce = async (): Promise<void> => {
    let timeout: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        options.probe(),
        new Promise<never>((_, reject) => {
          timeout = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timeout);
    }
  };

  const tick = async (): Promise<void> => {
    try {
      await probeOnce();
      failures = 0;
      if (down && !stopped) {
        down = false;
        options.log.info({ store: options.name, forMs: Date.now() - since }, `${options.name} answers again; health SERVING`);
        options.onChange(null);
      }
    } catch (err) {
      failures++;
      if (!down && failures >= failAfter && !stopped) {
        down = true;
        since = Date.now();
        options.onChange(`${options.name} is unavailable (${err instanceof Error ? err.message : String(err)}); calls get UNAVAILABLE until it answers`);
      }
    }
  };

  const schedule = (): void => {
    if (stopped) return;
    timer = setTimeout(() => void tick().finally(schedule), everyMs);
    timer.unref();
  };
  schedule();

  return {
    // eslint-disable-next-line no-restricted-syntax -- made once, not per call
    get down() {
      return down;
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
