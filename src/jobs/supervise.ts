// A parent job's handler side of children (src/jobs/children.ts): release held children while fewer than the limit
// run, stop releasing once the error budget is spent or cancellation is requested, report progress, and end when no
// child is left to run. Woken by the doorbells of its running children and its own (a cancel), with a periodic
// read as a safety net; every decision is taken in a transaction that locks the parent, so a second attempt (a
// takeover) and a stale one never release together.
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { LeaseLostError } from "./attempt-context.js";
import type { JobContext } from "./catalog.js";
import { endedChildren, releaseRound } from "./children.js";
import type { ChildCounts } from "./model.js";
import { jobDoorbellSubject } from "./events.js";
import { Bell } from "./watch.js";

/** Without a doorbell, the supervisor looks at its children this often. */
const SAFETY_READ_MS = 1_000;
/** While a cancel waits for the attempt to notice it (the next lease renewal), how often to look again. */
const CANCEL_POLL_MS = 250;

export interface SuperviseOptions {
  /** Children running at once at most. */
  maxRunning: number;
  /** Stop releasing after this many children failed. */
  errorBudget: number;
  /** A released child's deadline, from its release (its kind's timeout). */
  childTimeoutMs: number;
  subjectPrefix: string;
  /** Words for the progress line, e.g. "servers". */
  noun?: string;
  /** Called after each round that left children to release, once its releases went to the relay (a kind prepares the next ones). */
  afterRound?: (counts: ChildCounts) => void;
}

export interface Supervised {
  counts: ChildCounts;
  /** The error budget was spent: the children not started were cancelled. */
  budgetSpent: boolean;
}

/** "12/50 servers done: 10 succeeded · 2 failed · 0 cancelled · 5 running · 33 pending" */
export function describeCounts(c: ChildCounts, noun = "children"): string {
  return `${endedChildren(c)}/${c.total} ${noun} done: ${c.succeeded} succeeded · ${c.failed} failed · ${c.cancelled} cancelled · ${c.running} running · ${c.pending} pending`;
}

/** Runs until every child ended; throws what ctx.checkpoint() throws (cancel, timeout, shutdown) and LeaseLostError. */
export async function superviseChildren(ctx: JobContext, options: SuperviseOptions): Promise<Supervised> {
  const bell = new Bell();
  const subs = new Map<string, Subscription>();
  const nats = ctx.nats && !ctx.nats.isClosed() ? ctx.nats : undefined;
  const own = nats?.subscribe(jobDoorbellSubject(ctx.jobId), { callback: () => bell.ring() });
  let last = "";
  try {
    for (;;) {
      // Slots of this worker for the children the round releases: they start in its transaction and run here, with no
      // trip through the outbox, JetStream and a start transaction; the rest are published as before.
      const local = ctx.localStarts;
      const reserved = local?.reserve(options.maxRunning) ?? 0;
      let round: Awaited<ReturnType<typeof releaseRound>>;
      try {
        round = await releaseRound(ctx.sql, {
          jobId: ctx.jobId,
          attempt: ctx.attempt,
          maxRunning: options.maxRunning,
          errorBudget: options.errorBudget,
          childTimeoutMs: options.childTimeoutMs,
          subjectPrefix: options.subjectPrefix,
          startHere: local && reserved > 0 ? { owner: local.owner, leaseMs: local.leaseMs, max: reserved, runs: (kind) => local.runs(kind) } : undefined,
        });
      } catch (err) {
        local?.unreserve(reserved);
        throw err;
      }
      const startedHere = round.status === "ok" ? round.startedHere : [];
      local?.unreserve(reserved - startedHere.length);
      if (round.status === "lost") throw new LeaseLostError();
      // Listening to the children just released before they are published or run, so that one which ends at once
      // still wakes this loop; the interest is queued on the connection ahead of their publication, and nothing waits
      // for a read or a round trip before the release goes out.
      if (nats) for (const id of [...startedHere.map((j) => j.id), ...round.released.map((r) => r.jobId)]) listen(nats, subs, bell, id);
      for (const job of startedHere) local?.run(job);
      for (const ref of round.released) ctx.relay?.submit(ref);
      if (!round.cancelRequested && !round.budgetSpent && round.counts.pending > 0) options.afterRound?.(round.counts);
      // Then drop the doorbells of children that ended, and listen to any released before (by an earlier attempt).
      if (nats) await listenToRunning(nats, round.live, subs, bell);
      const line = describeCounts(round.counts, options.noun);
      if (line !== last) {
        last = line;
        const c = round.counts;
        await ctx.progress(c.total === 0 ? 100 : Math.floor((endedChildren(c) * 100) / c.total), line);
      }
      const finished = round.counts.pending === 0 && round.counts.running === 0;
      // A cancel is done with the children; the attempt ends CANCELLED once its control knows (the lease renewal).
      ctx.checkpoint();
      if (finished && !round.cancelRequested) return { counts: round.counts, budgetSpent: round.budgetSpent };
      await bell.wait(round.cancelRequested ? CANCEL_POLL_MS : SAFETY_READ_MS, ctx.signal);
    }
  } finally {
    own?.unsubscribe();
    for (const sub of subs.values()) sub.unsubscribe();
  }
}

/**
 * Keeps one doorbell subscription per child released and not ended (`live`, as the round left them: at most the
 * limit), none for the others.
 */
async function listenToRunning(nats: NatsConnection, live: readonly string[], subs: Map<string, Subscription>, bell: Bell): Promise<void> {
  const running = new Set(live);
  for (const [id, sub] of subs) {
    if (running.has(id)) continue;
    sub.unsubscribe();
    subs.delete(id);
  }
  let added = 0;
  for (const id of running) if (listen(nats, subs, bell, id)) added++;
  // The server must know the new interest before a child's first doorbell can ring.
  if (added > 0) await nats.flush().catch(() => undefined);
}

/** Subscribes to the doorbell of child `id` unless already listening; whether it subscribed. */
function listen(nats: NatsConnection, subs: Map<string, Subscription>, bell: Bell, id: string): boolean {
  if (subs.has(id)) return false;
  subs.set(id, nats.subscribe(jobDoorbellSubject(id), { callback: () => bell.ring() }));
  return true;
}
