// The JetStream stream that carries jobs: its idempotent set-up, and publishing with dedupe and trace headers.
import { headers as natsHeaders, nanos, type MsgHdrs } from "@nats-io/transport-node";
import {
  JetStreamApiCodes,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  type JetStreamManager,
  type PubAck,
  type StreamConfig,
  type StreamInfo,
} from "@nats-io/jetstream";
import type { Attributes, Context } from "@opentelemetry/api";
import { FailedPreconditionError, UnavailableError } from "../errors.js";
import type { Logger } from "../log.js";
import { injectTraceHeaders } from "../telemetry/propagation.js";
import { SpanKind, withSpan } from "../telemetry/spans.js";

/** Header carrying the publisher's dedupe id; JetStream drops a second message with the same id within the window. */
export const MSG_ID_HEADER = "Nats-Msg-Id";

/** JetStream API error codes not in JetStreamApiCodes. */
const STREAM_NAME_IN_USE = 10058;
const INSUFFICIENT_RESOURCES = 10023;
const NO_SUITABLE_PEERS = 10005;
const REPLICAS_NOT_SUPPORTED = 10074;

export interface JobsStreamOptions {
  stream: string;
  /** Jobs are published on `<subjectPrefix>.<kind>`; the stream takes `<subjectPrefix>.>`. */
  subjectPrefix: string;
  /** How long a message id is remembered for dedupe. Default 2 minutes. */
  duplicateWindowMs?: number;
  /** Copies of the stream in a JetStream cluster (mq.jobsStreamReplicas). Default 1. */
  replicas?: number;
  /** Where changes to an existing stream are reported (and a single copy on a cluster warned about). */
  log?: Pick<Logger, "info" | "warn">;
}

/** One setting of an existing stream or consumer that start-up changed. */
export interface SettingChange {
  setting: string;
  from: unknown;
  to: unknown;
}

/**
 * Creates the jobs stream (work-queue retention, file storage, `replicas` copies) or brings an existing one to this
 * configuration, logging each setting it changed. Safe to call from every process at start-up, concurrently.
 * Retention and storage cannot change on a live stream, and a cluster cannot hold more copies than it has JetStream
 * servers: both are refused with a FailedPreconditionError saying what to do, never silently kept.
 */
export async function ensureJobsStream(jsm: JetStreamManager, options: JobsStreamOptions): Promise<StreamInfo> {
  const replicas = options.replicas ?? 1;
  const wanted = {
    subjects: [`${options.subjectPrefix}.>`],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    duplicate_window: nanos(options.duplicateWindowMs ?? 120_000),
    num_replicas: replicas,
  };
  const existing = await streamInfo(jsm, options.stream);
  let info: StreamInfo | undefined;
  if (!existing) {
    try {
      info = await placed(options, () => jsm.streams.add({ name: options.stream, ...wanted }));
    } catch (err) {
      // Another process created it first; fall through to compare and update.
      if (!(err instanceof JetStreamApiError) || err.code !== STREAM_NAME_IN_USE) throw err;
    }
  }
  if (!info) {
    const current = existing ?? (await jsm.streams.info(options.stream));
    const { retention, storage } = current.config;
    if (retention !== wanted.retention || storage !== wanted.storage) {
      throw new FailedPreconditionError(
        `stream ${options.stream} exists with ${retention} retention and ${storage} storage; the jobs stream needs workqueue/file, ` +
          `and JetStream cannot change either on a live stream. Delete it (nats stream rm ${options.stream}) once it holds no work, and restart.`,
        "JOBS_STREAM_INCOMPATIBLE",
      );
    }
    // A server outside a cluster accepts an update to several copies, reports them, and keeps one.
    if (replicas > 1 && !current.cluster) throw replicasRefused(options, "the NATS server is not part of a JetStream cluster");
    const changes = streamChanges(current.config, wanted);
    info = current;
    if (changes.length > 0) {
      const c = current.config;
      info = await placed(options, () => jsm.streams.update(options.stream, { ...c, subjects: wanted.subjects, duplicate_window: wanted.duplicate_window, num_replicas: replicas } as StreamConfig));
      options.log?.info({ stream: options.stream, changes }, `jobs stream ${options.stream} reconciled: ${describeChanges(changes)}`);
    }
  }
  if (replicas === 1 && info.cluster?.name) {
    options.log?.warn(
      { stream: options.stream, cluster: info.cluster.name, leader: info.cluster.leader },
      `jobs stream ${options.stream} has one copy, on ${info.cluster.leader ?? "one server"} of NATS cluster ${info.cluster.name}: losing that server stops all work until it returns with its disk. Set mq.jobsStreamReplicas to 3`,
    );
  }
  return info;
}

/** The settings of `current` that differ from `wanted`, as the log and tests show them. */
export function streamChanges(current: StreamConfig, wanted: Pick<StreamConfig, "subjects" | "duplicate_window" | "num_replicas">): SettingChange[] {
  const changes: SettingChange[] = [];
  if (!sameSubjects(current.subjects, wanted.subjects)) changes.push({ setting: "subjects", from: current.subjects ?? [], to: wanted.subjects });
  if (current.duplicate_window !== wanted.duplicate_window) changes.push({ setting: "duplicate_window_ms", from: millisOf(current.duplicate_window), to: millisOf(wanted.duplicate_window) });
  if ((current.num_replicas || 1) !== wanted.num_replicas) changes.push({ setting: "replicas", from: current.num_replicas || 1, to: wanted.num_replicas });
  return changes;
}

export function describeChanges(changes: readonly SettingChange[]): string {
  return changes.map((c) => `${c.setting} ${JSON.stringify(c.from)} → ${JSON.stringify(c.to)}`).join(", ");
}

/** Runs a create or update, turning "cannot place that many copies" into an error an operator can act on. */
async function placed(options: JobsStreamOptions, op: () => Promise<StreamInfo>): Promise<StreamInfo> {
  try {
    return await op();
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === REPLICAS_NOT_SUPPORTED) throw replicasRefused(options, "the NATS server is not part of a JetStream cluster", err);
    if (err instanceof JetStreamApiError && (err.code === INSUFFICIENT_RESOURCES || err.code === NO_SUITABLE_PEERS)) throw replicasRefused(options, `the cluster cannot place them (${err.message}): it has fewer JetStream servers up`, err);
    throw err;
  }
}

function replicasRefused(options: JobsStreamOptions, why: string, cause?: unknown): FailedPreconditionError {
  const err = new FailedPreconditionError(
    `mq.jobsStreamReplicas is ${options.replicas ?? 1}, but stream ${options.stream} cannot have that many copies: ${why}. ` +
      "Point mq.url at the servers of a JetStream cluster with at least that many nodes up, or lower mq.jobsStreamReplicas (1 on a single server).",
    "JOBS_STREAM_REPLICAS",
  );
  if (cause) Object.assign(err, { cause });
  return err;
}

const millisOf = (ns: number | undefined): number => Math.round((ns ?? 0) / 1_000_000);

export interface PublishJobOptions {
  subject: string;
  /** Dedupe id (e.g. `<job id>:<attempt>`): a republish with the same id inside the window is acknowledged, not stored. */
  msgId: string;
  payload: Uint8Array;
  headers?: Record<string, string>;
  /** How long to wait for JetStream's acknowledgement. Default 5 s. */
  timeoutMs?: number;
  /** Gives up waiting when aborted; the message may still have been stored (a retry with the same msgId is safe). */
  signal?: AbortSignal;
  /** Trace to continue, e.g. contextFromTraceparent(job.traceparent); the active context when absent. */
  parent?: Context;
  /** Extra attributes for the publish span, e.g. jobAttributes(job). */
  attributes?: Attributes;
}

/** What publishJob needs of a JetStream client: its publish (src/mq/acked-publisher.ts provides a cheaper one). */
export interface JetStreamPublish {
  publish(subject: string, payload: Uint8Array, options: { msgID: string; headers: MsgHdrs; timeout: number }): Promise<PubAck>;
}

export interface PublishResult {
  seq: number;
  /** True when JetStream already had a message with this msgId (nothing new was stored). */
  duplicate: boolean;
}

/**
 * Publishes one job message with its dedupe id and W3C trace headers (of a PRODUCER span, child of `parent`), and waits
 * for JetStream to store it. Failure to get an acknowledgement is an UnavailableError: retry with the same msgId.
 */
export async function publishJob(js: JetStreamPublish, options: PublishJobOptions): Promise<PublishResult> {
  options.signal?.throwIfAborted();
  const attributes: Attributes = {
    "messaging.system": "nats",
    "messaging.operation.type": "send",
    "messaging.destination.name": options.subject,
    "messaging.message.id": options.msgId,
    "messaging.message.body.size": options.payload.byteLength,
    ...options.attributes,
  };
  return withSpan(`publish ${options.subject}`, { kind: SpanKind.PRODUCER, parent: options.parent, attributes }, async (span) => {
    const hdrs: MsgHdrs = natsHeaders();
    for (const [k, v] of Object.entries(options.headers ?? {})) hdrs.set(k, v);
    injectTraceHeaders(hdrs);
    const publish = js.publish(options.subject, options.payload, { msgID: options.msgId, headers: hdrs, timeout: options.timeoutMs ?? 5_000 });
    let ack;
    try {
      ack = await (options.signal ? raceAbort(publish, options.signal) : publish);
    } catch (err) {
      if (options.signal?.aborted && err === options.signal.reason) throw err;
      const why = err instanceof Error ? err.message : String(err);
      throw new UnavailableError(`JetStream did not acknowledge the message on ${options.subject}: ${why}`, "JETSTREAM_PUBLISH_FAILED", { cause: err });
    }
    span.setAttribute("messaging.nats.stream_sequence", ack.seq);
    if (ack.duplicate) span.setAttribute("messaging.nats.duplicate", true);
    return { seq: ack.seq, duplicate: ack.duplicate };
  });
}

async function streamInfo(jsm: JetStreamManager, stream: string): Promise<StreamInfo | null> {
  try {
    return await jsm.streams.info(stream);
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) return null;
    throw err;
  }
}

function sameSubjects(a: string[] | undefined, b: string[]): boolean {
  return !!a && a.length === b.length && a.every((s, i) => s === b[i]);
}

function raceAbort<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
