// The job as services see it (no Prisma or proto types), and the rules about its states.

export const JOB_STATES = ["QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"] as const;
export type JobState = (typeof JOB_STATES)[number];

export const TERMINAL_STATES: ReadonlySet<JobState> = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);

export function isTerminal(state: JobState): boolean {
  return TERMINAL_STATES.has(state);
}

export interface ResourceRef {
  type: string;
  id: string;
  /**
   * The account the resource belongs to, kept on the job for listing and scope. A creator that writes the resource's
   * row after the job (a launch) names it; otherwise it is found from the account, server or resource row.
   */
  accountId?: string;
}

export interface JobError {
  /** Canonical gRPC code name, e.g. "DEADLINE_EXCEEDED". */
  code: string;
  message: string;
  details?: Record<string, unknown>;
}

export interface Job {
  id: string;
  kind: string;
  state: JobState;
  attempt: number;
  maxAttempts: number;
  progressPercent: number;
  progressMessage: string;
  error: JobError | null;
  result: Record<string, unknown> | null;
  payload: unknown;
  requestedBy: string;
  resource: ResourceRef | null;
  idempotencyKey: string | null;
  traceId: string;
  cancelRequested: boolean;
  createdAt: Date;
  updatedAt: Date;
  startedAt: Date | null;
  endedAt: Date | null;
  deadlineAt: Date | null;
  /** The job that created this one with its siblings (a fleet command), or null. */
  parentId: string | null;
  /** A parent's children by state (GetJob and WatchJob read them for kinds that create children). */
  children?: ChildCounts;
}

/** Event types recorded in a job's history. */
export type JobEventType =
  | "created"
  | "released"
  | "started"
  | "progress"
  | "pending"
  | "succeeded"
  | "failed"
  | "cancelled"
  | "cancel_requested"
  | "retry_scheduled"
  | "retried"
  | "lease_expired"
  | "republished"
  | "timed_out"
  | "dead_lettered"
  | "stale_completion_rejected";

export interface JobEvent {
  jobId: string;
  sequence: number;
  type: JobEventType;
  fromState: JobState | null;
  toState: JobState;
  attempt: number;
  actor: string;
  message: string;
  time: Date;
}

/** A parent job's children by state (a fleet command's servers). */
export interface ChildCounts {
  total: number;
  /** Held: waiting for the parent to release them. */
  pending: number;
  running: number;
  succeeded: number;
  failed: number;
  cancelled: number;
}
