// What the cluster tests share: a client that submits diagnostic jobs with idempotency keys at a fixed number in
// flight and records every outcome and every error code a call met, and the accounting of a run read from the jobs
// and diagnostic_effects tables (lost, stuck, run twice).
import type { DispatcherClients } from "../../src/client/index.js";
import { DispatcherError } from "../../src/client/errors.js";
import { DiagnosticOutcome } from "../../src/gen/proto/dispatcher/v1/jobs.js";
import type { Sql } from "../../src/db/sql.js";

export interface SubmitOptions {
  count: number;
  inFlight: number;
  /** Idempotency keys are `<keyPrefix>-<i>`. */
  keyPrefix: string;
  /** How long each diagnostic job sleeps in its handler. */
  sleepMs: number;
  /** Deadline of each call. */
  deadlineMs?: number;
  /** How long one job may keep being retried (same key) before it counts as unknown. Default 60 s. */
  giveUpMs?: number;
  /** Jobs started per second at most (default: as fast as the calls answer). */
  ratePerSecond?: number;
}

export interface Submission {
  /** Job ids of the calls that answered OK, by idempotency key. */
  ok: Map<string, string>;
  /** Keys whose calls never answered OK (their job may or may not exist). */
  unknown: string[];
  /** Every error code calls met, retried or not, e.g. { UNAVAILABLE: 12 }: INTERNAL must never appear. */
  errors: Record<string, number>;
  /** The same, per client index. */
  errorsByClient: Record<number, Record<string, number>>;
  /** One message per error code, for assertion messages. */
  samples: Record<string, string>;
  /** Calls answered so far (ok or given up), for tests that act mid-run. */
  readonly done: number;
}

/** How long new jobs avoid a client whose call failed. */
const AVOID_AFTER_FAILURE_MS = 10_000;

/** Codes after which the same request (same idempotency key) is sent again: the first may or may not have landed. */
const RETRY = new Set(["UNAVAILABLE", "ABORTED", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "CANCELLED"]);

/**
 * Submits `count` diagnostic jobs through `clients` (job i to clients[i % n] unless that one failed in the last 10 s,
 * each retry to the next one, as a caller fails over between dispatchers behind a load balancer); `submission` fills as calls answer, `finished` resolves when all have.
 */
export function submitDiagnosticJobs(clients: Pick<DispatcherClients, "jobs"> | Pick<DispatcherClients, "jobs">[], options: SubmitOptions): { submission: Submission; finished: Promise<Submission> } {
  const list = Array.isArray(clients) ? clients : [clients];
  const failedAt: number[] = [];
  let done = 0;
  const submission: Submission = {
    ok: new Map(),
    unknown: [],
    errors: {},
    errorsByClient: {},
    samples: {},
    get done() {
      return done;
    },
  };
  let next = 0;
  const began = Date.now();
  const one = async (i: number): Promise<void> => {
    const key = `${options.keyPrefix}-${i}`;
    const request = {
      outcome: DiagnosticOutcome.DIAGNOSTIC_OUTCOME_SUCCEED,
      sleep: { seconds: "0", nanos: options.sleepMs * 1_000_000 },
      note: key,
      idempotencyKey: key,
    };
    const until = Date.now() + (options.giveUpMs ?? 60_000);
    let at = 0;
    for (let tries = 1; ; tries++) {
      try {
        // The first try goes to clients[i % n] unless that one failed lately; a retry goes to the next one.
        const first = Date.now() - (failedAt[i % list.length] ?? 0) < AVOID_AFTER_FAILURE_MS ? i + 1 : i;
        at = (first + tries - 1) % list.length;
        const client = list[at] as Pick<DispatcherClients, "jobs">;
        const { job } = await callRunDiagnostic(client, request, options.deadlineMs ?? 10_000);
        submission.ok.set(key, job?.id ?? "");
        return;
      } catch (err) {
        const code = err instanceof DispatcherError ? err.codeName : "CLIENT";
        submission.errors[code] = (submission.errors[code] ?? 0) + 1;
        const mine = (submission.errorsByClient[at] ??= {});
        mine[code] = (mine[code] ?? 0) + 1;
        // For a while, new jobs skip it, as a load balancer stops sending to a backend that failed.
        failedAt[at] = Date.now();
        submission.samples[code] ??= err instanceof Error ? err.message : String(err);
        if (!RETRY.has(code) || Date.now() > until) {
          submission.unknown.push(key);
          return;
        }
        await new Promise((r) => setTimeout(r, Math.min(1_000, 50 * 2 ** Math.min(tries, 5)) * Math.random()));
      }
    }
  };
  const finished = Promise.all(
    Array.from({ length: options.inFlight }, async () => {
      while (next < options.count) {
        const i = next++;
        if (options.ratePerSecond) {
          const due = began + (i * 1_000) / options.ratePerSecond - Date.now();
          if (due > 0) await new Promise((r) => setTimeout(r, due));
        }
        await one(i);
        done++;
      }
    }),
  ).then(() => submission);
  return { submission, finished };
}

function callRunDiagnostic(client: Pick<DispatcherClients, "jobs">, request: Parameters<DispatcherClients["jobs"]["runDiagnosticJob"]>[0], deadlineMs: number) {
  return client.jobs.runDiagnosticJob(request, { deadlineMs });
}

export interface Accounting {
  /** Jobs per state. */
  states: Record<string, number>;
  /** Jobs answered OK with no job row. */
  lost: number;
  /** Jobs not in a final state. */
  stuck: number;
  /** Jobs with more than one diagnostic_effects row. */
  doubleEffects: number;
  /** SUCCEEDED jobs without an effect row. */
  missingEffects: number;
  /** Effect rows of an attempt other than the job's final one (a stale worker's effect applied). */
  staleEffects: number;
  /** Keys that never answered OK but whose job exists (created, the answer lost). */
  unknownCreated: number;
}

/** Reads the accounting of a run from the provisioning database the dispatchers wrote to. */
export async function account(sql: Sql, submission: Submission): Promise<Accounting> {
  const states = Object.fromEntries(
    (await sql.query<{ state: string; n: bigint }>`SELECT state, COUNT(*) AS n FROM jobs WHERE kind = 'diagnostic' GROUP BY state`).map((r) => [r.state, Number(r.n)]),
  );
  const ids = [...submission.ok.values()];
  let present = 0;
  for (let i = 0; i < ids.length; i += 500) {
    const rows = await sql.query<{ n: bigint }>`SELECT COUNT(*) AS n FROM jobs WHERE id IN (${ids.slice(i, i + 500)})`;
    present += Number(rows[0]?.n ?? 0);
  }
  const [twice] = await sql.query<{ n: bigint }>`SELECT COUNT(*) AS n FROM (SELECT job_id FROM diagnostic_effects GROUP BY job_id HAVING COUNT(*) > 1) t`;
  const [missing] = await sql.query<{ n: bigint }>`
    SELECT COUNT(*) AS n FROM jobs j WHERE j.kind = 'diagnostic' AND j.state = 'SUCCEEDED' AND NOT EXISTS (SELECT 1 FROM diagnostic_effects e WHERE e.job_id = j.id)`;
  const [stale] = await sql.query<{ n: bigint }>`SELECT COUNT(*) AS n FROM diagnostic_effects e JOIN jobs j ON j.id = e.job_id WHERE e.attempt <> j.attempt`;
  let unknownCreated = 0;
  if (submission.unknown.length > 0) {
    const rows = await sql.query<{ n: bigint }>`SELECT COUNT(*) AS n FROM jobs WHERE idempotency_key IN (${submission.unknown})`;
    unknownCreated = Number(rows[0]?.n ?? 0);
  }
  const final = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);
  return {
    states,
    lost: ids.length - present,
    stuck: Object.entries(states).reduce((n, [s, c]) => (final.has(s) ? n : n + c), 0),
    doubleEffects: Number(twice?.n ?? 0),
    missingEffects: Number(missing?.n ?? 0),
    staleEffects: Number(stale?.n ?? 0),
    unknownCreated,
  };
}
