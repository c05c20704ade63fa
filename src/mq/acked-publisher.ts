// JetStream publications that await their acks through one reply subscription per publisher, instead of a request per
// message: the client's request path arms a timer, registers a mux entry and builds an error object (with its stack
// trace) for every message, which cost a relay about 20 µs of CPU per publication against about 7 µs here.
import { createInbox, type Msg, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import type { PubAck } from "@nats-io/jetstream";
import { MSG_ID_HEADER, type JetStreamPublish } from "./jobs-stream.js";
import { SlotMap } from "../runtime/slot-table.js";

/** publishJob's JetStreamPublish (src/mq/jobs-stream.ts) over one reply subscription of its own. */
export interface AckedPublisher extends JetStreamPublish {
  /** Stops listening for acks; publications still waiting fail. */
  close(): void;
}

interface Waiting {
  resolve(ack: PubAck): void;
  reject(err: Error): void;
  /** Date.now() after which the publication fails for want of an ack. */
  until: number;
}

/** How often publications waiting past their timeout are failed (one timer for all of them). */
const SWEEP_EVERY_MS = 100;
const decoder = new TextDecoder();

export function createAckedPublisher(nc: NatsConnection): AckedPublisher {
  const prefix = createInbox();
  // A slot map, not a Map: an entry per publication (../runtime/slot-table.ts says why).
  const waiting = new SlotMap<string, Waiting>();
  let next = 0;
  let sweeper: NodeJS.Timeout | undefined;

  const sub: Subscription = nc.subscribe(`${prefix}.*`, {
    callback: (err, msg) => {
      if (err) return;
      const token = msg.subject.slice(prefix.length + 1);
      const w = waiting.get(token);
      if (!w) return;
      waiting.delete(token);
      const ack = ackOf(msg);
      if (ack instanceof Error) w.reject(ack);
      else w.resolve(ack);
    },
  });

  const sweep = (): void => {
    const now = Date.now();
    for (const [token, w] of waiting) {
      if (w.until > now) continue;
      waiting.delete(token);
      w.reject(new Error("timed out waiting for JetStream's ack"));
    }
    if (waiting.size === 0) {
      clearInterval(sweeper);
      sweeper = undefined;
    }
  };

  return {
    publish(subject, payload, options) {
      return new Promise<PubAck>((resolve, reject) => {
        const token = (next++).toString(36);
        options.headers.set(MSG_ID_HEADER, options.msgID);
        waiting.set(token, { resolve, reject, until: Date.now() + options.timeout });
        sweeper ??= setInterval(sweep, SWEEP_EVERY_MS);
        try {
          nc.publish(subject, payload, { reply: `${prefix}.${token}`, headers: options.headers });
        } catch (err) {
          waiting.delete(token);
          reject(err instanceof Error ? err : new Error(String(err)));
        }
      });
    },
    close() {
      sub.unsubscribe();
      clearInterval(sweeper);
      sweeper = undefined;
      for (const w of waiting.values()) w.reject(new Error("the publisher was closed"));
      waiting.clear();
    },
  };
}

/** The ack in a reply, or why the message was not stored: no stream on the subject (503), or JetStream's error. */
function ackOf(msg: Msg): PubAck | Error {
  if (msg.headers?.code === 503) return new Error("no stream takes this subject (no responders)");
  let v: { stream?: unknown; seq?: unknown; duplicate?: unknown; domain?: unknown; error?: { code?: number; err_code?: number; description?: string } };
  try {
    v = JSON.parse(decoder.decode(msg.data)) as typeof v;
  } catch {
    return new Error("JetStream's ack could not be read");
  }
  if (v.error) return new Error(`JetStream refused the message: ${v.error.description ?? "unknown error"} (${v.error.err_code ?? v.error.code ?? "?"})`);
  if (typeof v.stream !== "string" || typeof v.seq !== "number") return new Error("JetStream's ack could not be read");
  return { stream: v.stream, seq: v.seq, duplicate: v.duplicate === true, ...(typeof v.domain === "string" ? { domain: v.domain } : {}) } as PubAck;
}
