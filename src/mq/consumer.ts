// Workers' side of the jobs stream: the durable pull consumer's set-up and a consume loop with bounded concurrency.
import { nanos, type MsgHdrs } from "@nats-io/transport-node";
import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type ConsumerConfig,
  type ConsumerInfo,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from "@nats-io/jetstream";
import type { Attributes } from "@opentelemetry/api";
import type { Logger } from "../log.js";
import { extractTraceHeaders } from "../telemetry/propagation.js";
import { SpanKind, withSpan, type Span } from "../telemetry/spans.js";
import { FailedPreconditionError } from "../errors.js";
import { describeChanges, MSG_ID_HEADER, type SettingChange } from "./jobs-stream.js";
import { createOutageLog, type OutageLog } from "./outage-log.js";
import { SlotSet } from "../runtime/slot-table.js";

export interface WorkerConsumerOptions {
  stream: string;
  durable: string;
  /** Subjects this consumer takes; one subject works on every server, several need NATS 2.10+. */
  filterSubjects: string[];
  /** How long a delivery may stay unacknowledged (without working()) before it is redelivered. */
  ackWaitMs: number;
  /** Deliveries before JetStream gives up and emits the max-deliveries advisory. */
  maxDeliver: number;
  /**
   * Redelivery delays after an ack timeout. JetStream then uses them AS the ack wait: delivery n waits
   * backoffMs[min(n, len) - 1] and `ackWaitMs` is ignored. Must be shorter than maxDeliver. Explicit nak(delay) is separate.
   */
  backoffMs?: number[];
  /** Unacknowledged deliveries across all workers before JetStream pauses delivery. */
  maxAckPending?: number;
  /** Copies of the consumer's state in a JetStream cluster: the stream's replicas. Unset: the server's choice. */
  replicas?: number;
  /** Where changes to an existing consumer are reported. */
  log?: Pick<Logger, "info">;
}

/**
 * Creates the durable pull consumer (explicit ack) or brings an existing one to these settings, logging each one it
 * changed. Safe to call concurrently. A consumer that cannot become this one in place (a push consumer, another ack
 * policy) is refused with a FailedPreconditionError saying how to replace it.
 */
export async function ensureWorkerConsumer(jsm: JetStreamManager, options: WorkerConsumerOptions): Promise<ConsumerInfo> {
  if (options.filterSubjects.length === 0) throw new Error("ensureWorkerConsumer: filterSubjects must name at least one subject");
  const backoff = options.backoffMs?.length ? options.backoffMs.map(nanos) : undefined;
  const filter = options.filterSubjects.length === 1 ? { filter_subject: options.filterSubjects[0] } : { filter_subjects: options.filterSubjects };
  const settings = {
    ack_wait: nanos(options.ackWaitMs),
    max_deliver: options.maxDeliver,
    backoff,
    ...(options.maxAckPending !== undefined ? { max_ack_pending: options.maxAckPending } : {}),
    ...(options.replicas !== undefined ? { num_replicas: options.replicas } : {}),
    ...filter,
  };
  // `backoff: []` clears a backoff set before.
  const update = async (current: ConsumerInfo): Promise<ConsumerInfo> => {
    refuseIncompatible(current, options);
    const changes = consumerChanges(current.config, options);
    if (changes.length === 0) return current;
    const info = await jsm.consumers.update(options.stream, options.durable, { ...settings, backoff: backoff ?? [] });
    options.log?.info({ stream: options.stream, consumer: options.durable, changes }, `jobs consumer ${options.durable} reconciled: ${describeChanges(changes)}`);
    return info;
  };
  const existing = await consumerInfo(jsm, options.stream, options.durable);
  if (existing) return update(existing);
  const config: Partial<ConsumerConfig> = { durable_name: options.durable, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, ...settings };
  try {
    return await jsm.consumers.add(options.stream, config);
  } catch (err) {
    // Created by another worker meanwhile (newer servers refuse a create that differs): update instead.
    const now = await consumerInfo(jsm, options.stream, options.durable);
    if (!now) throw err;
    return update(now);
  }
}

/** The settings of an existing consumer that differ from `options`. */
export function consumerChanges(current: ConsumerConfig, options: WorkerConsumerOptions): SettingChange[] {
  const changes: SettingChange[] = [];
  const ms = (ns: number | undefined) => Math.round((ns ?? 0) / 1_000_000);
  const subjects = current.filter_subjects?.length ? current.filter_subjects : current.filter_subject ? [current.filter_subject] : [];
  if (subjects.join(",") !== options.filterSubjects.join(",")) changes.push({ setting: "filter_subjects", from: subjects, to: options.filterSubjects });
  if (ms(current.ack_wait) !== options.ackWaitMs) changes.push({ setting: "ack_wait_ms", from: ms(current.ack_wait), to: options.ackWaitMs });
  if (current.max_deliver !== options.maxDeliver) changes.push({ setting: "max_deliver", from: current.max_deliver, to: options.maxDeliver });
  const backoff = (current.backoff ?? []).map(ms);
  if (backoff.join(",") !== (options.backoffMs ?? []).join(",")) changes.push({ setting: "backoff_ms", from: backoff, to: options.backoffMs ?? [] });
  if (options.maxAckPending !== undefined && current.max_ack_pending !== options.maxAckPending) {
    changes.push({ setting: "max_ack_pending", from: current.max_ack_pending, to: options.maxAckPending });
  }
  if (options.replicas !== undefined && (current.num_replicas ?? 0) !== options.replicas) changes.push({ setting: "replicas", from: current.num_replicas ?? 0, to: options.replicas });
  return changes;
}

function refuseIncompatible(current: ConsumerInfo, options: WorkerConsumerOptions): void {
  const c = current.config;
  const problems: string[] = [];
  if (c.deliver_subject) problems.push(`it is a push consumer (deliver subject ${c.deliver_subject})`);
  if (c.ack_policy !== AckPolicy.Explicit) problems.push(`its ack policy is ${c.ack_policy}, not explicit`);
  if (problems.length === 0) return;
  throw new FailedPreconditionError(
    `consumer ${options.durable} on stream ${options.stream} cannot serve the workers: ${problems.join(" and ")}, which JetStream cannot change in place. ` +
      `Stop the workers, delete it (nats consumer rm ${options.stream} ${options.durable}) and start them again: unacknowledged jobs are delivered again.`,
    "JOBS_CONSUMER_INCOMPATIBLE",
  );
}

/**
 * How long one pull request lasts, and how often the server sends an idle heartbeat on it. Two heartbeats missed in a
 * row (about 1 s) make the client pull again at once. A pull lives on the consumer's leader, so when that leader's
 * nats-server dies the pull dies with it: this is how soon a worker notices. An idle worker so costs the server one
 * pull request every 2 s and two heartbeats a second: nothing.
 */
const PULL_EXPIRES_MS = 2_000;
const PULL_IDLE_HEARTBEAT_MS = 500;

/** One delivery handed to `onMessage`. Settle it exactly once: ack, nak or term. */
export interface Delivery {
  readonly subject: string;
  readonly data: Uint8Array;
  readonly headers: MsgHdrs | undefined;
  /** The publisher's dedupe id (Nats-Msg-Id), when it set one. */
  readonly msgId: string | undefined;
  /** Stream sequence of this message. */
  readonly seq: number;
  /** 1 on the first delivery. */
  readonly deliveryCount: number;
  readonly settled: boolean;
  /** Done: JetStream removes the message from the work queue. */
  ack(): void;
  /** Deliver again, after `delayMs` (or at once). Counts towards maxDeliver. */
  nak(delayMs?: number): void;
  /** Still working: restarts the ack-wait clock. */
  working(): void;
  /** Never deliver again (a permanent failure); no max-deliveries advisory follows. The reason goes on the span only. */
  term(reason?: string): void;
}

export interface ConsumeOptions {
  stream: string;
  durable: string;
  /** Most deliveries handled at once by this process (also the pull batch size). */
  maxMessages: number;
  /**
   * Handles one delivery inside a CONSUMER span continuing the publisher's trace. Must settle it before returning;
   * one that throws or returns unsettled is nak'ed after `retryDelayMs`.
   */
  onMessage: (delivery: Delivery) => Promise<void>;
  log: Logger;
  /** When set, working() is sent this often while onMessage runs, so slow handlers keep their delivery. */
  heartbeatMs?: number;
  /** Delay of the nak after a handler that threw or forgot to settle. Default 1 s. */
  retryDelayMs?: number;
}

export interface Consumption {
  /**
   * Stops pulling, naks deliveries it had taken but not started, and waits for running handlers to finish. Messages
   * still buffered in the client (at most maxMessages) are not seen again here: JetStream redelivers them once their
   * ack wait expires.
   */
  stop(): Promise<void>;
  /** Resolves when the loop has ended (after stop(), or when the connection closed). */
  readonly done: Promise<void>;
}

/** Starts consuming; resolves once the consumer was found and the first pull is under way. */
export async function consume(js: JetStreamClient, options: ConsumeOptions): Promise<Consumption> {
  const max = Math.max(1, options.maxMessages);
  const consumer = await js.consumers.get(options.stream, options.durable);
  // bind: after missed heartbeats or a reconnect, pull again at once. Without it the client first asks for the
  // consumer's info, which during a leader election waits out the JetStream API timeout (5 s) and then a backoff as
  // long as the pull expiry before it pulls again: 10-12.5 s without work after the stream leader's node was killed.
  // The consumer exists: ensureWorkerConsumer made it before.
  const messages = await consumer.consume({ max_messages: max, expires: PULL_EXPIRES_MS, idle_heartbeat: PULL_IDLE_HEARTBEAT_MS, bind: true });
  const running = new SlotSet<Promise<void>>(); // an entry per message: ../runtime/slot-table.ts
  let stopping = false;

  const outage = createOutageLog(options.log, "receiving jobs from the consumer");
  void logNotifications(messages, options, outage, () => running.size >= max);
  const done = (async () => {
    try {
      for await (const m of messages) {
        outage.succeeded();
        while (running.size >= max && !stopping) await Promise.race(running);
        if (stopping) {
          m.nak();
          continue;
        }
        const p: Promise<void> = handle(m, options).finally(() => running.delete(p));
        running.add(p);
      }
    } catch (err) {
      options.log.error({ err, stream: options.stream, consumer: options.durable }, "jobs consumer stopped on an error");
    }
    await Promise.allSettled(running);
  })();

  return {
    done,
    async stop() {
      stopping = true;
      await messages.close();
      await done;
    },
  };
}

async function handle(m: JsMsg, options: ConsumeOptions): Promise<void> {
  const delivery = new JsDelivery(m);
  const attributes = {
    "messaging.system": "nats",
    "messaging.operation.type": "process",
    "messaging.destination.name": m.subject,
    "messaging.consumer.group.name": options.durable,
    "messaging.nats.stream_sequence": m.seq,
    "messaging.nats.delivery_count": delivery.deliveryCount,
    ...(delivery.msgId ? { "messaging.message.id": delivery.msgId } : {}),
  };
  const heartbeat = options.heartbeatMs ? setInterval(() => delivery.working(), options.heartbeatMs) : undefined;
  try {
    await withSpan(`process ${m.subject}`, { kind: SpanKind.CONSUMER, parent: extractTraceHeaders(m.headers), attributes }, async (span) => {
      delivery.span = span;
      await options.onMessage(delivery);
      if (!delivery.settled) throw new Error("handler returned without ack, nak or term");
    });
  } catch (err) {
    const where = { err, subject: m.subject, seq: m.seq, deliveries: delivery.deliveryCount };
    if (delivery.settled) {
      options.log.error(where, "job message handler failed after settling its message");
    } else {
      options.log.error(where, "job message handler failed; redelivering");
      delivery.nak(options.retryDelayMs ?? 1_000);
    }
  } finally {
    if (heartbeat) clearInterval(heartbeat);
  }
}

/**
 * A message as the handler sees it. A class, not an object literal with a `settled` getter: a literal whose accessor
 * closes over per-message state gets a hidden class of its own, allocated where the collector looks only in full
 * collections, and that hidden class keeps the whole message's object graph alive through every minor collection.
 */
class JsDelivery implements Delivery {
  readonly subject: string;
  readonly data: Uint8Array;
  readonly headers: MsgHdrs | undefined;
  readonly msgId: string | undefined;
  readonly seq: number;
  readonly deliveryCount: number;
  span: Span | undefined = undefined;
  #settled = false;

  constructor(private readonly m: JsMsg) {
    this.subject = m.subject;
    this.data = m.data;
    this.headers = m.headers;
    this.msgId = m.headers?.get(MSG_ID_HEADER) || undefined;
    this.seq = m.seq;
    this.deliveryCount = m.info.deliveryCount;
  }

  get settled(): boolean {
    return this.#settled;
  }

  ack(): void {
    this.settle("ack", () => this.m.ack());
  }

  nak(delayMs?: number): void {
    this.settle("nak", () => this.m.nak(delayMs), delayMs ? { "delay_ms": delayMs } : undefined);
  }

  working(): void {
    if (!this.#settled) this.m.working();
  }

  // The reason stays on our side: NATS before 2.10.4 ignores a "+TERM <reason>" and redelivers the message.
  term(reason?: string): void {
    this.settle("term", () => this.m.term(), reason ? { reason } : undefined);
  }

  private settle(outcome: string, fn: () => void, detail?: Attributes): void {
    if (this.#settled) return;
    this.#settled = true;
    fn();
    this.span?.addEvent(outcome, detail);
  }
}

/**
 * One warning when deliveries stop (two idle heartbeats missed while the worker has room, no consumer leader answering
 * the pull, consumer or stream gone), a summary every 30 s while they stay stopped, and one line with how long it lasted when a heartbeat or
 * a message arrives again. The client pulls again by itself after each missed pair (every ~1 s).
 */
async function logNotifications(messages: ConsumerMessages, options: ConsumeOptions, outage: OutageLog, busy: () => boolean): Promise<void> {
  const where = { stream: options.stream, consumer: options.durable };
  for await (const n of messages.status()) {
    // A worker whose every slot is taken asks for nothing, so no pull is open to carry heartbeats: that is no outage.
    if (n.type === "heartbeats_missed" && busy()) continue;
    if (n.type === "heartbeats_missed" || n.type === "no_responders" || n.type === "consumer_not_found" || n.type === "stream_not_found" || n.type === "consumer_deleted") {
      outage.failed(undefined, { ...where, notification: n.type });
    } else if (n.type === "heartbeat") {
      outage.succeeded();
    } else if (n.type === "exceeded_limits") {
      options.log.warn({ ...where, notification: n.type }, "jobs consumer pull exceeded server limits");
    }
  }
}

async function consumerInfo(jsm: JetStreamManager, stream: string, durable: string): Promise<ConsumerInfo | null> {
  try {
    return await jsm.consumers.info(stream, durable);
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound) return null;
    throw err;
  }
}
