// Group commit for a worker's two hot transactions: starting several attempts, and completing several successful
// ones, each in one transaction (one commit, a handful of statements) instead of one per job. The compare-and-sets
// are the single path's: a start batch locks its rows first and takes only QUEUED, runnable rows through the batched
// statements (every other row goes through startLocked in the same transaction); a completion batch commits only
// when every one of its compare-and-sets wins and every effect succeeds — otherwise it rolls back and each attempt
// takes complete() on its own, which records a stale outcome as it always does.
import { IN_TRANSACTION, sqlFragment, sqlJoin, type Sql } from "../db/sql.js";
import { measuring } from "../telemetry/metrics.js";
import { CLAIMED_NOTE, micros, START_COLUMNS, startedJob, type CompleteInput, type JobExecution, type StartInput, type StartResult, type StartRow } from "./execution.js";

/** A job id seen twice in one batch: the second delivery is a duplicate while the first one runs. */
const DUPLICATE: StartResult = { status: "skipped", state: "RUNNING" };

/** Rolls a completion batch back so that its attempts go one by one. */
class BatchLost extends Error {
  constructor(readonly applied: number) {
    super(`a completion batch lost ${applied} of its compare-and-sets`);
  }
}

/** start() for several deliveries of one owner, in one transaction; results in the order of `inputs`. */
export async function startMany(ex: JobExecution, inputs: StartInput[]): Promise<StartResult[]> {
  if (inputs.length === 1) return [await ex.start(inputs[0] as StartInput)];
  const { owner, leaseMs } = oneOwner(inputs);
  const ids = [...new Set(inputs.map((i) => i.jobId))].sort();
  const byId = await ex.transaction("start_batch", null, async (tx) => {
    const out = new Map<string, StartResult>();
    // In id order, like every statement that locks several jobs, so that lockers wait for each other, never deadlock.
    const rows = await tx.query<StartRow>`SELECT ${START_COLUMNS} FROM jobs WHERE id IN (${ids}) ORDER BY id FOR UPDATE`;
    const plain = rows.filter(runnableNow);
    const claimed = new Set(inputs.filter((i) => i.claimed).map((i) => i.jobId));
    for (const row of rows) if (!plain.includes(row)) out.set(row.id, await ex.startLocked(tx, row, { owner, leaseMs, claimed: claimed.has(row.id) }));
    if (plain.length > 0) {
      const plainIds = plain.map((r) => r.id);
      // The UPDATE and the events go together (run in order: the events read the updated attempts); a mismatch throws
      // and rolls both back.
      const [n] = await Promise.all([
        tx.execute`
          UPDATE jobs SET state = 'RUNNING', attempt = attempt + 1, lease_owner = ${owner},
                 lease_expires_at = NOW(3) + INTERVAL ${micros(leaseMs)} MICROSECOND, next_check_at = NULL,
                 started_at = COALESCE(started_at, NOW(3)), updated_at = NOW(3)
           WHERE id IN (${plainIds}) AND state = 'QUEUED'`,
        appendEvents(tx, plainIds, { type: "started", from: "QUEUED", to: "RUNNING", actor: owner, message: startedMessage(plainIds.filter((id) => claimed.has(id))) }),
      ]);
      if (n !== plain.length) throw new Error(`jobs changed under their row locks (${n} of ${plain.length} started)`);
      for (const row of plain) {
        out.set(row.id, { status: "started", job: startedJob(row, row.deadlineInMs === null ? null : Number(row.deadlineInMs)), tookOver: false });
        ex.measure(tx, { transition: "started", kind: row.kind });
        if (row.attempt === 0) ex.measure(tx, { transition: "wait", kind: row.kind, seconds: Number(row.waitedUs) / 1e6 });
      }
    }
    return out;
  });
  const seen = new Set<string>();
  return inputs.map((input) => {
    if (seen.has(input.jobId)) return DUPLICATE;
    seen.add(input.jobId);
    const result = byId.get(input.jobId) ?? { status: "skipped", state: null };
    if (result.status !== "skipped") ex.ring(input.jobId);
    return result;
  });
}

/**
 * complete() for several attempts of one owner, in one transaction; outcomes in the order of `inputs` (after a
 * fallback, each attempt's own: applied, rejected as stale, or the error its commit met).
 */
export async function completeMany(ex: JobExecution, inputs: CompleteInput[]): Promise<PromiseSettledResult<boolean>[]> {
  if (inputs.length === 1) return Promise.allSettled([ex.complete(inputs[0] as CompleteInput)]);
  const { owner } = oneOwner(inputs);
  const sorted = [...inputs].sort((a, b) => (a.jobId < b.jobId ? -1 : a.jobId > b.jobId ? 1 : 0));
  const ids = sorted.map((i) => i.jobId);
  const resultArms = sqlJoin(sorted.map((i) => sqlFragment`WHEN ${i.jobId} THEN ${i.result === undefined ? null : JSON.stringify(i.result)}`), " ");
  const attemptArms = sqlJoin(sorted.map((i) => sqlFragment`WHEN ${i.jobId} THEN ${i.attempt}`), " ");
  try {
    await ex.transaction("complete_batch", null, async (tx) => {
      // The compare-and-sets, the events and the guarded effects (each of their statements does nothing outside this
      // transaction) go together, run in order; a lost compare-and-set rolls them all back (BatchLost).
      const settled = await Promise.allSettled([
        tx.execute`
          UPDATE jobs SET state = 'SUCCEEDED', result = CASE id ${resultArms} END, progress_percent = 100, error_code = NULL,
                 error_message = NULL, error_details = NULL, lease_owner = NULL, lease_expires_at = NULL, next_check_at = NULL,
                 ended_at = NOW(3), updated_at = NOW(3)
           WHERE id IN (${ids}) AND state = 'RUNNING' AND lease_owner = ${owner} AND attempt = CASE id ${attemptArms} END`,
        appendEvents(tx, ids, { type: "succeeded", from: "RUNNING", to: "SUCCEEDED", actor: owner, message: sqlFragment`CONCAT('attempt ', j.attempt, ' succeeded')` }),
        ...sorted.map((input) => (input.effectsGuarded ? input.effects?.(tx) : undefined)),
      ]);
      const [cas] = settled;
      if (cas?.status === "fulfilled" && cas.value !== sorted.length) throw new BatchLost(cas.value);
      for (const r of settled) if (r.status === "rejected") throw r.reason;
      await measureSuccesses(ex, tx, sorted);
      // Other effects one attempt's after another, never pipelined: a deadlock (a Galera node's applier aborting this
      // transaction for a conflicting commit elsewhere) rolls the whole transaction back, and statements already sent
      // behind the failing one would then run on their own, in autocommit, applying a stale attempt's effect. A chaos
      // run showed 4 such effects when a slowed worker's leases were requeued on another node mid-batch.
      for (const input of sorted) if (!input.effectsGuarded) await input.effects?.(tx);
    });
  } catch {
    // Lost compare-and-sets, a failing effect or the database: each attempt on its own, with the single path's
    // stale-outcome record and errors (a database that is down fails those too, and the worker retries them).
    return Promise.allSettled(inputs.map((input) => ex.complete(input)));
  }
  for (const id of ids) ex.ring(id);
  return inputs.map(() => ({ status: "fulfilled", value: true }));
}

/**
 * The next event of each job in `jobIds` (rows this transaction locked), its attempt and message read from the job.
 * Sent pipelined behind the batch's UPDATE: IN_TRANSACTION keeps it from running alone should that abort the transaction.
 */
async function appendEvents(tx: Sql, jobIds: string[], e: { type: string; from: string; to: string; actor: string; message: ReturnType<typeof sqlFragment> }): Promise<void> {
  await tx.execute`
    INSERT INTO job_events (job_id, sequence, type, from_state, to_state, attempt, actor, message, created_at)
    SELECT j.id, COALESCE((SELECT MAX(x.sequence) FROM job_events x WHERE x.job_id = j.id), 0) + 1, ${e.type}, ${e.from}, ${e.to},
           j.attempt, ${e.actor}, ${e.message}, NOW(3)
      FROM jobs j WHERE j.id IN (${jobIds}) AND ${IN_TRANSACTION}`;
}

/** Counts a batch's successes and, while metrics are on, times each run (one read of the rows the batch holds). */
async function measureSuccesses(ex: JobExecution, tx: Sql, inputs: CompleteInput[]): Promise<void> {
  for (const input of inputs) ex.measure(tx, { transition: "succeeded", kind: input.kind });
  if (!measuring()) return;
  const rows = await tx.query<{ kind: string; us: bigint | number | null }>`
    SELECT kind, TIMESTAMPDIFF(MICROSECOND, started_at, NOW(3)) AS us FROM jobs WHERE id IN (${inputs.map((i) => i.jobId)})`;
  for (const r of rows) if (r.us !== null) ex.measure(tx, { transition: "run", kind: r.kind, outcome: "succeeded", seconds: Number(r.us) / 1e6 });
}

/** A batch's "started" message, noting the jobs of `claimedIds` as claimed from the database. */
function startedMessage(claimedIds: string[]): ReturnType<typeof sqlFragment> {
  const note = claimedIds.length > 0 ? sqlFragment`IF(j.id IN (${claimedIds}), ${CLAIMED_NOTE}, '')` : sqlFragment`''`;
  return sqlFragment`CONCAT('attempt ', j.attempt, ' of ', j.max_attempts, ${note})`;
}

/** QUEUED and nothing to end it with: no cancellation, deadline ahead, attempts left. */
function runnableNow(row: StartRow): boolean {
  return row.state === "QUEUED" && Number(row.cancelRequested) !== 1 && (row.deadlineInMs === null || Number(row.deadlineInMs) > 0) && row.attempt < row.maxAttempts;
}

function oneOwner<T extends { owner: string; leaseMs?: number }>(inputs: T[]): { owner: string; leaseMs: number } {
  const first = inputs[0];
  if (!first || inputs.some((i) => i.owner !== first.owner || i.leaseMs !== first.leaseMs)) throw new Error("a batch takes attempts of one owner and lease");
  return { owner: first.owner, leaseMs: first.leaseMs ?? 0 };
}
