// The NATS connection: connect with a message that says how to start NATS, reconnect forever, log what happens, close.
import { connect, type NatsConnection, type Status } from "@nats-io/transport-node";
import { retrying, type Backoff } from "../backoff.js";
import { UnavailableError } from "../errors.js";
import type { Logger } from "../log.js";

export interface NatsOptions {
  /** nats://host:port (comma-separate several servers of one cluster). */
  url: string;
  /** Connection name shown by the server (`nats server report connections`). */
  name: string;
  /** How long the first connection may take. */
  timeoutMs: number;
  log: Logger;
  /** Refuse a server without JetStream (default true). */
  requireJetStream?: boolean;
  /**
   * While no server of `url` can be reached, log and try again with backoff (start-up of a role) instead of throwing
   * (default false).
   */
  wait?: Backoff & { giveUpAfterMs?: number };
}

/** How to start the machine's NATS server, with JetStream, on the host and port of `url`. */
export function natsStartHint(url: string): string {
  const { host, port } = hostPort(url);
  return `start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- -a ${host} -p ${port} -js -sd /var/lib/nats-server -l /var/log/nats-server.log`;
}

/**
 * Connects to NATS. The first connection must succeed within `timeoutMs`, otherwise an UnavailableError names the URL
 * and how to start NATS; afterwards the client reconnects forever and logs each disconnect and reconnect.
 */
export async function connectNats(options: NatsOptions): Promise<NatsConnection> {
  const wait = options.wait;
  if (!wait) return connectOnce(options);
  const url = safeUrl(options.url);
  return retrying(() => connectOnce(options), {
    backoff: wait,
    giveUpAfterMs: wait.giveUpAfterMs,
    retryable: (err) => err instanceof UnavailableError && err.reason === "NATS_UNAVAILABLE",
    onRetry: (err, attempt, retryInMs) => options.log.warn({ url, attempt, retryInMs }, `waiting for NATS: ${(err as Error).message}`),
    onRecovered: (attempts) => options.log.info({ attempts }, "NATS is reachable; continuing"),
  });
}

async function connectOnce(options: NatsOptions): Promise<NatsConnection> {
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: options.url.split(",").map((s) => s.trim()),
      name: options.name,
      timeout: options.timeoutMs,
      reconnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 1_000,
      waitOnFirstConnect: false,
      // Otherwise every request (each JetStream publish) captures a stack trace up front, for a timeout's message.
      noAsyncTraces: true,
    });
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new UnavailableError(
      `NATS is not reachable at ${safeUrl(options.url)} (${why}). Start it, with JetStream enabled (-js): ${natsStartHint(options.url)}`,
      "NATS_UNAVAILABLE",
      { cause: err },
    );
  }
  if ((options.requireJetStream ?? true) && !nc.info?.jetstream) {
    await nc.close();
    throw new UnavailableError(
      `NATS at ${safeUrl(options.url)} has JetStream disabled; restart nats-server with -js (e.g. ${natsStartHint(options.url)})`,
      "JETSTREAM_DISABLED",
    );
  }
  options.log.info({ server: nc.getServer(), version: nc.info?.version }, "connected to NATS");
  void logStatus(nc, options.log);
  return nc;
}

/** Drains subscriptions and closes; safe to call twice or on a connection already closed. */
export async function closeNats(nc: NatsConnection): Promise<void> {
  if (nc.isClosed()) return;
  try {
    await nc.drain();
  } catch {
    // Draining a connection that is closing or disconnected fails; closing is what matters.
    if (!nc.isClosed()) await nc.close();
  }
  await nc.closed();
}

async function logStatus(nc: NatsConnection, log: Logger): Promise<void> {
  for await (const s of nc.status()) logOne(s, log);
}

function logOne(s: Status, log: Logger): void {
  switch (s.type) {
    case "disconnect":
      log.warn({ server: s.server }, "disconnected from NATS; reconnecting");
      break;
    case "reconnect":
      log.info({ server: s.server }, "reconnected to NATS");
      break;
    case "error":
      log.error({ err: s.error }, "NATS error");
      break;
    case "ldm":
      log.warn({ server: s.server }, "NATS server entering lame duck mode");
      break;
    case "staleConnection":
      log.warn("NATS connection is stale; reconnecting");
      break;
    case "slowConsumer":
      log.warn({ subject: s.sub.getSubject(), pending: s.pending }, "slow NATS subscriber");
      break;
    default:
      break;
  }
}

/** The URL without a password or token, for messages. */
function safeUrl(url: string): string {
  return url.replace(/\/\/([^:@/]*)(:[^@/]*)?@/g, (_m, user: string, pass?: string) => (pass ? `//${user}:***@` : "//***@"));
}

function hostPort(url: string): { host: string; port: string } {
  const first = url.split(",")[0]?.trim() ?? "";
  const m = /^(?:[a-z]+:\/\/)?(?:[^@/]*@)?([^:/]+|\[[^\]]+\])(?::(\d+))?/.exec(first);
  return { host: m?.[1] ?? "127.0.0.1", port: m?.[2] ?? "4222" };
}
