// The transactional outbox: writing a job's publication in the caller's transaction, the relay's reads and writes of
// outbox_entries, and the wire format of a job message (subject, Nats-Msg-Id, JSON payload, trace headers).
import { sqlFragment, sqlJoin, type Sql, type SqlPool } from "../db/sql.js";

/** What a job message carries; workers read the rest from the database. */
export interface JobMessage {
  jobId: string;
  kind: string;
  /** Which publication of the job this is (1 at creation); names the Nats-Msg-Id `<jobId>:<publication>`. */
  publication: number;
}

/** An outbox row as written: everything the relay needs to publish it without reading it back. */
export interface OutboxRef {
  /** outbox_entries.id */
  id: bigint;
  jobId: string;
  kind: string;
  publication: number;
  msgId: string;
  subject: string;
  /** traceparent (and tracestate) of the job's stored context. */
  headers: Record<string, string>;
  payload: JobMessage;
}

export interface PublicationInput {
  jobId: string;
  kind: string;
  /** The job's stored W3C traceparent; the relay's publish span continues it. */
  traceparent?: string | null;
  tracestate?: string | null;
  /** config.mq.subjectPrefix */
  subjectPrefix: string;
}

/** `<prefix>.<kind>` */
export function jobSubject(subjectPrefix: string, kind: string): string {
  return `${subjectPrefix}.${kind}`;
}

/** `<jobId>:<publication>`: each publication has its own dedupe id, so a republish is never mistaken for a duplicate. */
export function jobMsgId(jobId: string, publication: number): string {
  return `${jobId}:${publication}`;
}

export function encodeJobMessage(m: JobMessage): Uint8Array {
  return Buffer.from(JSON.stringify({ jobId: m.jobId, kind: m.kind, publication: m.publication }), "utf8");
}

/** The job message in a delivery's data, or null when it is not one (a worker terminates such a message). */
export function parseJobMessage(data: Uint8Array): JobMessage | null {
  try {
    const v = JSON.parse(Buffer.from(data).toString("utf8")) as Partial<JobMessage> | null;
    if (!v || typeof v.jobId !== "string" || !v.jobId || typeof v.kind !== "string" || !v.kind) return null;
    const publication = typeof v.publication === "number" && Number.isInteger(v.publication) ? v.publication : 0;
    return { jobId: v.jobId, kind: v.kind, publication };
  } catch {
    return null;
  }
}

function traceHeaders(traceparent?: string | null, tracestate?: string | null): Record<string, string> {
  const headers: Record<string, string> = {};
  if (traceparent) headers.traceparent = traceparent;
  if (traceparent && tracestate) headers.tracestate = tracestate;
  return headers;
}

/**
 * Writes publication `publication` of jobs whose jobs.publish_count the caller already set to it (job creation
 * inserts jobs with publish_count 1), one row per input, in one statement. Prefer enqueuePublication unless you wrote
 * the count. Results in the order of `inputs`.
 */
export async function insertOutboxEntries(sql: Sql, inputs: (PublicationInput & { publication: number; attempt: number })[]): Promise<OutboxRef[]> {
  const refs = inputs.map((input) => {
    const payload: JobMessage = { jobId: input.jobId, kind: input.kind, publication: input.publication };
    const msgId = jobMsgId(input.jobId, input.publication);
    return { id: 0n, jobId: input.jobId, kind: input.kind, publication: input.publication, msgId, subject: jobSubject(input.subjectPrefix, input.kind), headers: traceHeaders(input.traceparent, input.tracestate), payload };
  });
  const values = refs.map(
    (r, i) => sqlFragment`(${r.jobId}, ${inputs[i]?.attempt ?? 0}, ${r.msgId}, ${r.subject}, ${JSON.stringify(r.headers)}, ${JSON.stringify(r.payload)}, NOW(3))`,
  );
  const rows = await sql.query<{ id: bigint; msgId: string }>`
    INSERT INTO outbox_entries (job_id, attempt, msg_id, subject, headers, payload, created_at) VALUES ${sqlJoin(values, ", ")}
    RETURNING id, msg_id AS msgId`;
  const ids = new Map(rows.map((r) => [r.msgId, BigInt(r.id)]));
  return refs.map((r) => {
    const id = ids.get(r.msgId);
    if (id === undefined) throw new Error(`outbox insert for job ${r.jobId} returned no id`);
    return { ...r, id };
  });
}

/**
 * Schedules one more publication of a job in the caller's transaction: bumps jobs.publish_count and writes the outbox
 * row named after it (two round trips; the UPDATE locks the job row, so concurrent publications get distinct numbers).
 * Hand the result to the relay after commit (fast path); otherwise its poll loop publishes it within seconds.
 * Throws when the job does not exist.
 */
export async function enqueuePublication(tx: Sql, input: PublicationInput): Promise<OutboxRef> {
  const updated = await tx.execute`UPDATE jobs SET publish_count = publish_count + 1 WHERE id = ${input.jobId}`;
  if (updated !== 1) throw new Error(`cannot publish job ${input.jobId}: no such job`);
  const headers = traceHeaders(input.traceparent, input.tracestate);
  const subject = jobSubject(input.subjectPrefix, input.kind);
  // The publication number is read inside the INSERT, from the row this transaction just locked and bumped.
  const rows = await tx.query<{ id: bigint; msg_id: string }>`
    INSERT INTO outbox_entries (job_id, attempt, msg_id, subject, headers, payload, created_at)
    SELECT id, attempt, CONCAT(id, ':', publish_count), ${subject}, ${JSON.stringify(headers)},
           JSON_OBJECT('jobId', id, 'kind', ${input.kind}, 'publication', publish_count), NOW(3)
      FROM jobs WHERE id = ${input.jobId}
    RETURNING id, msg_id`;
  const row = rows[0];
  if (!row) throw new Error(`cannot publish job ${input.jobId}: no such job`);
  const publication = Number(row.msg_id.slice(row.msg_id.lastIndexOf(":") + 1));
  return {
    id: BigInt(row.id),
    jobId: input.jobId,
    kind: input.kind,
    publication,
    msgId: row.msg_id,
    subject,
    headers,
    payload: { jobId: input.jobId, kind: input.kind, publication },
  };
}

interface OutboxRow {
  id: bigint;
  jobId: string;
  msgId: string;
  subject: string;
  headers: unknown;
  payload: unknown;
}

/**
 * Claims up to `limit` rows left unpublished for more than `staleAfterMs`, locking them until the caller's transaction
 * ends and skipping rows another relay holds. Run it in a READ COMMITTED transaction: under REPEATABLE READ the scan's
 * gap locks would block every job creation until the claim commits.
 */
export async function claimStaleOutboxRows(tx: Sql, staleAfterMs: number, limit: number): Promise<OutboxRef[]> {
  const rows = await tx.query<OutboxRow>`
    SELECT id, job_id AS jobId, msg_id AS msgId, subject, headers, payload FROM outbox_entries
     WHERE created_at < NOW(3) - INTERVAL ${staleAfterMs * 1000} MICROSECOND
     ORDER BY id LIMIT ${limit} FOR UPDATE SKIP LOCKED`;
  return rows.map(refOfRow);
}

/** Counts a failed publication try of each row. */
export async function countFailedTries(sql: Sql, ids: bigint[]): Promise<void> {
  await sql.execute`UPDATE outbox_entries SET publish_attempts = publish_attempts + 1 WHERE id IN (${ids})`;
}

/**
 * Marks rows published by deleting them (the table holds only what is still to be published) and stamps the last
 * publication of their jobs that are still QUEUED (the reconciler reads it only for those; a job a worker already
 * started is neither changed nor, under READ COMMITTED, locked). A job's published_at never moves back: a retry
 * scheduled meanwhile sets it to when the delayed redelivery is due.
 *
 * Given the pool, the two statements commit on their own: each holds its row locks only while the server runs it,
 * never across a round trip, so a worker starting one of these jobs does not wait for the relay. (A job whose stamp
 * is lost to a crash in between is at worst republished by the reconciler if it is still queued 30 s later — what
 * the reconciler is for.) Given a transaction (the poll loop's claim), both run in it.
 */
export async function markOutboxPublished(sql: Sql | SqlPool, rows: Pick<OutboxRef, "id" | "jobId">[]): Promise<void> {
  if (rows.length === 0) return;
  // Primary keys in order: concurrent markers lock rows in the same order, so they wait rather than deadlock.
  const ids = rows.map((r) => r.id).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const jobIds = [...new Set(rows.map((r) => r.jobId))].sort();
  // The ids as a derived table joined to the key, so that the DELETE locks exactly these rows. On a table this small
  // (rows live only until published) `WHERE id IN (…)` is planned as a scan of the table, whose locking reads wait on
  // the rows another relay's poll holds — and two such relays deadlock.
  const keys = sqlJoin(ids.map((id) => sqlFragment`(${id})`), ", ");
  await sql.execute`DELETE o FROM (SELECT 0 AS id UNION ALL VALUES ${keys}) k STRAIGHT_JOIN outbox_entries o ON o.id = k.id`;
  await sql.execute`
    UPDATE jobs SET published_at = GREATEST(COALESCE(published_at, NOW(3)), NOW(3)) WHERE id IN (${jobIds}) AND state = 'QUEUED'`;
}

function refOfRow(row: OutboxRow): OutboxRef {
  const headers = asRecord(row.headers);
  const payload = parseJobMessage(Buffer.from(typeof row.payload === "string" ? row.payload : JSON.stringify(row.payload ?? null)));
  const msgId = row.msgId;
  const publication = payload?.publication || Number(msgId.slice(msgId.lastIndexOf(":") + 1)) || 0;
  const kind = payload?.kind ?? row.subject.slice(row.subject.indexOf(".") + 1);
  return { id: BigInt(row.id), jobId: row.jobId, kind, publication, msgId, subject: row.subject, headers, payload: { jobId: row.jobId, kind, publication } };
}

function asRecord(value: unknown): Record<string, string> {
  const v = typeof value === "string" ? (JSON.parse(value) as unknown) : value;
  const out: Record<string, string> = {};
  if (v && typeof v === "object") for (const [k, x] of Object.entries(v)) if (typeof x === "string") out[k] = x;
  return out;
}
