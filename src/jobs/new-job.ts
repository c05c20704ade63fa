// A job as insertJobs and insertHeldChildren write it: what the job service decides before the row exists.
import type { ResourceRef } from "./model.js";

export interface NewJob {
  id: string;
  kind: string;
  payload: unknown;
  maxAttempts: number;
  requestedBy: string;
  resource: ResourceRef | null;
  idempotencyKey: string | null;
  traceId: string;
  traceparent: string | null;
  tracestate?: string | null;
  /** Becomes created_at and updated_at (the id's time too, so id order follows creation order). */
  now: Date;
  deadlineAt: Date | null;
  /** Actor of the "created" event: the requesting principal. */
  actor: string;
  subjectPrefix: string;
}
