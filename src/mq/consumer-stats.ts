// The figures of the workers' durable consumer on the jobs stream, as JetStream reports them: what waits for a worker,
// what is being worked on, what was redelivered.
import { JetStreamApiCodes, JetStreamApiError, type JetStreamManager } from "@nats-io/jetstream";

export interface ConsumerStats {
  stream: string;
  consumer: string;
  /** False when the consumer does not exist yet (no worker started); the counts are then those of the stream alone. */
  present: boolean;
  streamMessages: number;
  /** Not yet delivered to any worker. */
  pending: number;
  /** Delivered, not yet acknowledged. */
  ackPending: number;
  /** Delivered more than once, not yet acknowledged. */
  redelivered: number;
  /** Pull requests waiting for work. */
  waiting: number;
}

export async function readConsumerStats(jsm: JetStreamManager, stream: string, consumer: string): Promise<ConsumerStats> {
  const streamInfo = await jsm.streams.info(stream);
  const empty = { stream, consumer, present: false, streamMessages: streamInfo.state.messages, pending: 0, ackPending: 0, redelivered: 0, waiting: 0 };
  try {
    const info = await jsm.consumers.info(stream, consumer);
    return { ...empty, present: true, pending: info.num_pending, ackPending: info.num_ack_pending, redelivered: info.num_redelivered, waiting: info.num_waiting };
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound) return empty;
    throw err;
  }
}
