// The job catalog: every kind of job declared once — payload schema, handler, completion check, timeouts, retries.
import type { z } from "zod";
import type { DriverRegistry } from "../clouds/registry.js";
import type { Config } from "../config.js";
import type { Sql, SqlPool } from "../db/sql.js";
import type { KmClient } from "../km/client.js";
import type { Logger } from "../log.js";
import type { NatsConnection } from "@nats-io/transport-node";
import type { StartedJob } from "./attempt.js";
import type { OutboxPublisher } from "./relay.js";

/**
 * What job code may use of the process it runs in, and nothing more: the provisioning database, the clock, the cloud
 * drivers, KM and the settings handlers read. The composition root (src/app) hands one to the worker and the monitor.
 */
export interface JobServices {
  /** The provisioning database (src/db/sql.ts). */
  sql: SqlPool;
  now: () => Date;
  /** Cloud drivers by name (src/clouds). */
  drivers: DriverRegistry;
  /**
   * This process's KM client, made on first use so that a process whose jobs never need credentials never needs KM
   * settings. Throws ConfigError when KM is not configured usably.
   */
  km(): KmClient;
  /** The settings handlers read (agent credentials and bootstrap, the discovery interval, the endpoints agents may not have). */
  config: Pick<Config, "mode" | "dataDir" | "agent" | "discovery" | "server" | "bridge" | "console" | "km" | "provisioning" | "analytics" | "mq" | "telemetry">;
  /** This process's NATS connection, where it has one: a parent job listens to its children's doorbells on it. */
  nats?: NatsConnection | undefined;
  /** Publishes outbox rows this process committed at once (a parent releasing children); without it the relays' poll loops do within seconds. */
  relay?: OutboxPublisher | undefined;
  /** In a worker: its free slots, where a parent starts the children it releases (src/jobs/children.ts). */
  localStarts?: LocalStarts | undefined;
}

/**
 * A worker's free slots as a parent job uses them: children it releases into them start in the release's own
 * transaction, under this worker's lease and with no message, and run here at once. Slots are reserved before the
 * release and each started child is handed to run() after its commit; a crash leaves them RUNNING under a lease that
 * expires, and the reconciler requeues and publishes them as it does any job whose worker died.
 */
export interface LocalStarts {
  /** lease_owner and lease of the attempts started so. */
  owner: string;
  leaseMs: number;
  /** Whether this worker runs jobs of `kind` here: a kind it does not know, or a parent's, waits for a delivery. */
  runs(kind: string): boolean;
  /** Reserves up to `max` free slots (none while the worker stops); how many it reserved. */
  reserve(max: number): number;
  /** Gives back `n` reserved slots no child took. */
  unreserve(n: number): void;
  /** Runs a child a release started under `owner`, in one of the reserved slots. */
  run(job: StartedJob): void;
}

/** What a handler (or a completion check) receives besides its payload: its attempt, and the job services. */
export interface JobContext extends JobServices {
  jobId: string;
  kind: string;
  attempt: number;
  /** Aborts on cancellation request, job timeout or worker shutdown; pass it to every call. */
  signal: AbortSignal;
  log: Logger;
  /** Records progress (0–100) on the job; best effort, never fails the job. */
  progress(percent: number, message?: string): Promise<void>;
  /** Throws JobCancelledError when cancellation was requested; call it between steps. */
  checkpoint(): void;
}

/** The outcome of a handler or a completion check. */
export type JobOutcome =
  | {
      status: "succeeded";
      result?: Record<string, unknown>;
      /**
       * Database effects applied in the same transaction as the completion (only if it wins the compare-and-set), so
       * they happen exactly once. `tx` runs statements in that transaction (src/db/sql.ts: values are parameters).
       */
      effects?: (tx: Sql) => Promise<void>;
      /**
       * Every statement of `effects` carries IN_TRANSACTION (src/db/sql.ts) in its condition, so it changes nothing
       * outside the completion's transaction: the completion may then send the effects with its compare-and-set and
       * alongside other attempts' effects (one round trip) instead of after it, one attempt at a time.
       */
      effectsGuarded?: boolean;
    }
  | { status: "pending"; checkAfterMs: number; progressPercent?: number; progressMessage?: string };

export interface JobKind<P = unknown> {
  kind: string;
  /** Validates the payload stored with the job; a payload that fails it fails the job permanently. */
  payload: z.ZodType<P>;
  handle(ctx: JobContext, payload: P): Promise<JobOutcome>;
  /** Completion by observation: called by the monitor after a "pending" outcome until done or timed out. */
  check?(ctx: JobContext, payload: P, checks: number): Promise<JobOutcome>;
  /** How long a worker may hold a delivery without an in-progress ack before NATS redelivers it. */
  ackWaitMs: number;
  maxAttempts: number;
  /** Delay before attempt n+1 after attempt n failed retryably: backoffMs[n-1], the last entry repeating. */
  backoffMs: number[];
  /** From creation to terminal state, including completion checks. */
  timeoutMs: number;
  /** Permission an RPC needs to start a job of this kind. */
  permission: string;
  /** Jobs of this kind create children (src/jobs/children.ts): GetJob and WatchJob report their counts. */
  parent?: boolean;
}

export class JobCatalog {
  private readonly kinds = new Map<string, JobKind>();

  constructor(kinds: JobKind<never>[] = []) {
    for (const k of kinds) this.register(k);
  }

  register<P>(kind: JobKind<P>): void {
    if (this.kinds.has(kind.kind)) throw new Error(`job kind ${kind.kind} declared twice`);
    this.kinds.set(kind.kind, kind as unknown as JobKind);
  }

  get(kind: string): JobKind | undefined {
    return this.kinds.get(kind);
  }

  names(): string[] {
    return [...this.kinds.keys()];
  }

  /** The backoff before the next attempt, after `attempt` attempts failed. */
  static backoff(kind: JobKind, attempt: number): number {
    const list = kind.backoffMs;
    return list[Math.min(Math.max(attempt - 1, 0), list.length - 1)] ?? 1000;
  }
}
