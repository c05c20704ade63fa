// JetStream advisories the job system acts on: a message that used up its deliveries (drives dead-lettering).
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import type { Logger } from "../log.js";

/** What JetStream says when a consumer delivered a message maxDeliver times without an ack. */
export interface MaxDeliveriesAdvisory {
  stream: string;
  consumer: string;
  /** Stream sequence of the message; it stays in a work-queue stream until removed (see readStreamMessage). */
  streamSeq: number;
  deliveries: number;
  time: Date;
}

export function maxDeliveriesSubject(stream: string, consumer: string): string {
  return `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${stream}.${consumer}`;
}

export interface MaxDeliveriesOptions {
  stream: string;
  /** Durable name; "*" for every consumer of the stream. */
  consumer: string;
  /** With a queue group, one of several subscribing processes gets each advisory instead of all of them. */
  queue?: string;
  onAdvisory: (advisory: MaxDeliveriesAdvisory) => void | Promise<void>;
  log: Logger;
}

/**
 * Subscribes to the max-deliveries advisory. Advisories are plain NATS messages: one published while nobody listens
 * is lost, so dead-lettering must also be reachable from the job's attempt count (the reconciler). Unsubscribe (or
 * drain the connection) to stop.
 */
export function subscribeMaxDeliveries(nc: NatsConnection, options: MaxDeliveriesOptions): Subscription {
  return nc.subscribe(maxDeliveriesSubject(options.stream, options.consumer), {
    ...(options.queue ? { queue: options.queue } : {}),
    callback: (err, msg) => {
      if (err) {
        options.log.error({ err }, "max-deliveries advisory subscription failed");
        return;
      }
      let advisory: MaxDeliveriesAdvisory;
      try {
        advisory = parseMaxDeliveries(msg.json());
      } catch (parseErr) {
        options.log.warn({ err: parseErr, subject: msg.subject }, "unreadable max-deliveries advisory ignored");
        return;
      }
      Promise.resolve()
        .then(() => options.onAdvisory(advisory))
        .catch((handlerErr: unknown) => options.log.error({ err: handlerErr, ...advisory }, "max-deliveries advisory handler failed"));
    },
  });
}

/** Parses the advisory body (`io.nats.jetstream.advisory.v1.max_deliver`). */
export function parseMaxDeliveries(body: unknown): MaxDeliveriesAdvisory {
  const b = body as Record<string, unknown>;
  if (typeof b?.stream !== "string" || typeof b.consumer !== "string" || typeof b.stream_seq !== "number" || typeof b.deliveries !== "number") {
    throw new Error("not a max-deliveries advisory");
  }
  return {
    stream: b.stream,
    consumer: b.consumer,
    streamSeq: b.stream_seq,
    deliveries: b.deliveries,
    time: typeof b.timestamp === "string" ? new Date(b.timestamp) : new Date(),
  };
}
