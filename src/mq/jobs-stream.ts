// The JetStream stream that carries jobs: its idempotent set-up, and publishing with dedupe and trace headers.
import { headers as natsHeaders, nanos, type MsgHdrs } from "@nats-io/transport-node";
import {
  JetStreamApiCodes,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  type JetStreamClient,
  type JetStreamManager,
  type StreamConfig,
  type StreamInfo,
} from "@nats-io/jetstream";
import type { Attributes, Context } from "@opentelemetry/api";
import { UnavailableError } from "../errors.js";
import { injectTraceHeaders } from "../telemetry/propagation.js";
import { SpanKind, withSpan } from "../telemetry/spans.js";

/** Header carrying the publisher's dedupe id; JetStream drops a second message with the same id within the window. */
export const MSG_ID_HEADER = "Nats-Msg-Id";

/** JetStream API error codes not in JetStreamApiCodes. */
const STREAM_NAME_IN_USE = 10058;

export interface JobsStreamOptions {
  stream: string;
  /** Jobs are published on `<subjectPrefix>.<kind>`; the stream takes `<subjectPrefix>.>`. */
  subjectPrefix: string;
  /** How long a message id is remembered for dedupe. Default 2 minutes. */
  duplicateWindowMs?: number;
}

/**
 * Creates the jobs stream (work-queue retention, file storage) or brings an existing one to this configuration.
 * Safe to call from every process at start-up, concurrently. Retention and storage cannot change on a live stream:
 * a stream created otherwise is reported, not silently kept.
 */
export async function ensureJobsStream(jsm: JetStreamManager, options: JobsStreamOptions): Promise<StreamInfo> {
  const wanted = {
    subjects: [`${options.subjectPrefix}.>`],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    duplicate_window: nanos(options.duplicateWindowMs ?? 120_000),
  };
  const existing = await streamInfo(jsm, options.stream);
  if (!existing) {
    try {
      return await jsm.streams.add({ name: options.stream, ...wanted });
    } catch (err) {
      // Another process created it first; fall through to compare and update.
      if (!(err instanceof JetStreamApiError) || err.code !== STREAM_NAME_IN_USE) throw err;
    }
  }
  const info = existing ?? (await jsm.streams.info(options.stream));
  const { retention, storage } = info.config;
  if (retention !== wanted.retention || storage !== wanted.storage) {
    throw new Error(
      `stream ${options.stream} exists with ${retention} retention and ${storage} storage; the jobs stream needs workqueue/file. ` +
        `Delete it (nats stream rm ${options.stream}) once it holds no work, and restart.`,
    );
  }
  const c = info.config;
  if (sameSubjects(c.subjects, wanted.subjects) && c.duplicate_window === wanted.duplicate_window) return info;
  return jsm.streams.update(options.stream, { ...c, subjects: wanted.subjects, duplicate_window: wanted.duplicate_window } as StreamConfig);
}

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

export interface PublishResult {
  seq: number;
  /** True when JetStream already had a message with this msgId (nothing new was stored). */
  duplicate: boolean;
}

/**
 * Publishes one job message with its dedupe id and W3C trace headers (of a PRODUCER span, child of `parent`), and waits
 * for JetStream to store it. Failure to get an acknowledgement is an UnavailableError: retry with the same msgId.
 */
export async function publishJob(js: JetStreamClient, options: PublishJobOptions): Promise<PublishResult> {
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
