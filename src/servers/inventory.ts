// The one place that records what was observed of a server on its cloud — by a lifecycle job or by discovery:
// compares the observation with the row, updates what differs (version + 1) and writes a server_event for every
// change, naming the job that caused it. Nothing is ever overwritten silently.
import type { ServerAddresses, ServerObservation, ServerState } from "../clouds/driver.js";
import { newId } from "../db/ids.js";
import type { Sql } from "../db/sql.js";
import type { CatalogProduct, Server } from "./model.js";
import { insertServer, insertServerEvents, findServer, type NewServerEvent } from "./repository.js";

/** Who observed: a job (its id lands on the events), or discovery (its servers.sync job, when there is one). */
export type ObservationCause = { jobId: string; discovery?: boolean } | { discovery: true; jobId?: string | null };

/** The part of an observation the inventory keeps; launchedAt and details are optional for callers that lack them. */
export type Observation = Pick<ServerObservation, "state" | "addresses"> & Partial<Pick<ServerObservation, "providerId" | "launchedAt" | "details" | "tags" | "firewallIds" | "keyPairName">>;

/**
 * The details the inventory keeps of an observation: the provider's, plus the firewalls the server is in (their
 * provider ids, sorted, comma separated) and its key pair's name, where the provider reports them.
 */
export function detailsOf(observation: Observation): Record<string, string> | undefined {
  if (!observation.details) return undefined;
  const out: Record<string, string> = { ...observation.details };
  if (observation.firewallIds && observation.firewallIds.length > 0) out.firewalls = [...observation.firewallIds].sort().join(",");
  if (observation.keyPairName) out.keyPair = observation.keyPairName;
  return out;
}

export interface Applied {
  server: Server;
  /** Whether anything was written. */
  changed: boolean;
  /** The state before, when it changed. */
  previousState: ServerState | null;
}

const sameList = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);
const sameAddresses = (a: ServerAddresses, b: ServerAddresses): boolean => sameList(a.private, b.private) && sameList(a.public, b.public);
const sameDetails = (a: Record<string, string>, b: Record<string, string>): boolean => {
  const ka = Object.keys(a).sort();
  const kb = Object.keys(b).sort();
  return sameList(ka, kb) && ka.every((k) => a[k] === b[k]);
};

function by(cause: ObservationCause): string {
  if (cause.discovery) return "discovery";
  return `job ${cause.jobId ?? ""}`;
}

/**
 * Records `observation` of `server` (the row as read, locked, in `tx`). Returns the row as it now stands. Throws when
 * the row changed since it was read (the caller did not lock it): a lost update is a bug, not a retry.
 */
export async function applyObservation(tx: Sql, server: Server, observation: Observation, cause: ObservationCause): Promise<Applied> {
  const jobId = cause.jobId ?? null;
  const events: NewServerEvent[] = [];
  const next: Server = { ...server };
  const at = new Date();

  if (observation.providerId && server.providerId !== observation.providerId) {
    next.providerId = observation.providerId;
    events.push({ serverId: server.id, type: "PROVIDER_ID_ASSIGNED", jobId, message: `provider id ${observation.providerId} (was ${server.providerId ?? "none"}), seen by ${by(cause)}`, details: { providerId: observation.providerId, previous: server.providerId } });
  }
  if (observation.state !== server.state) {
    next.state = observation.state;
    next.stateChangedAt = at;
    events.push({ serverId: server.id, type: "STATE_CHANGED", fromState: server.state, toState: observation.state, jobId, message: `${server.state} → ${observation.state}, seen by ${by(cause)}` });
    if (observation.state === "TERMINATED" && !server.terminatedAt) next.terminatedAt = at;
  }
  if (!sameAddresses(observation.addresses, server.addresses)) {
    next.addresses = { private: [...observation.addresses.private], public: [...observation.addresses.public] };
    events.push({ serverId: server.id, type: "ADDRESSES_CHANGED", jobId, message: `addresses now private [${next.addresses.private.join(", ")}] public [${next.addresses.public.join(", ")}], seen by ${by(cause)}`, details: { before: server.addresses, after: next.addresses } });
  }
  const details = detailsOf(observation);
  if (details && !sameDetails(details, server.details)) {
    next.details = details;
    events.push({ serverId: server.id, type: "DETAILS_CHANGED", jobId, message: `provider details changed, seen by ${by(cause)}`, details: { before: server.details, after: next.details } });
  }
  if (observation.tags && !sameDetails(observation.tags, server.tags)) {
    next.tags = { ...observation.tags };
    events.push({ serverId: server.id, type: "TAGS_CHANGED", jobId, message: `tags now ${JSON.stringify(next.tags).slice(0, 900)}, seen by ${by(cause)}`, details: { before: server.tags, after: next.tags } });
  }
  if (!server.launchedAt && (observation.launchedAt || observation.state === "RUNNING")) {
    next.launchedAt = observation.launchedAt ?? at;
  }
  const changed = events.length > 0 || next.launchedAt !== server.launchedAt;
  if (!changed) return { server, changed: false, previousState: null };

  const n = await tx.execute`
    UPDATE servers
       SET provider_id = ${next.providerId}, state = ${next.state}, addresses = ${JSON.stringify(next.addresses)}, details = ${JSON.stringify(next.details)},
           tags = ${JSON.stringify(next.tags)},
           launched_at = ${next.launchedAt}, terminated_at = ${next.terminatedAt}, state_changed_at = ${next.stateChangedAt},
           version = version + 1, updated_at = NOW(3)
     WHERE id = ${server.id} AND version = ${server.version}`;
  if (n !== 1) throw new Error(`server ${server.id} changed while its observation was being recorded (version ${server.version}); lock the row first`);
  await insertServerEvents(tx, events);
  next.version = server.version + 1;
  next.updatedAt = at;
  return { server: next, changed: true, previousState: next.state !== server.state ? server.state : null };
}

/** Reads the server locked in `tx` and records the observation; null when the server does not exist. */
export async function recordObservation(tx: Sql, serverId: string, observation: Observation, cause: ObservationCause): Promise<Applied | null> {
  const server = await findServer(tx, serverId, true);
  return server ? applyObservation(tx, server, observation, cause) : null;
}

/** The provider no longer lists the server (or never will): TERMINATED, with a VANISHED event saying why. */
export async function markVanished(tx: Sql, server: Server, cause: ObservationCause, why: string): Promise<Applied> {
  const applied = await applyObservation(tx, server, { state: "TERMINATED", addresses: server.addresses }, cause);
  await insertServerEvents(tx, [{ serverId: server.id, type: "VANISHED", fromState: server.state, toState: "TERMINATED", jobId: cause.jobId ?? null, message: why }]);
  return applied;
}

/**
 * A server found on the cloud that the inventory does not know: adopted (origin DISCOVERED), billed to the account's
 * default budget code at the catalog's price for its product (0 when the product is unknown).
 */
export async function adoptServer(
  tx: Sql,
  input: { accountId: string; observation: ServerObservation; product: CatalogProduct | null; budgetCode: string; cause: ObservationCause },
): Promise<string> {
  const o = input.observation;
  const id = newId();
  await insertServer(tx, {
    id,
    accountId: input.accountId,
    regionId: o.regionId,
    dataCenter: o.dataCenter.slice(0, 64),
    providerId: o.providerId,
    name: (o.name || o.providerId).slice(0, 128),
    productId: o.productId.slice(0, 128),
    imageId: o.imageId.slice(0, 255),
    budgetCode: input.budgetCode,
    state: o.state,
    origin: "DISCOVERED",
    addresses: o.addresses,
    details: detailsOf(o) ?? {},
    tags: { ...(o.tags ?? {}) },
    hourlyPriceMicros: input.product?.hourlyPriceMicros ?? 0n,
    accruesWhenStopped: input.product?.accruesWhenStopped ?? false,
    launchedAt: o.launchedAt,
    createdBy: "discovery",
  });
  await insertServerEvents(tx, [
    { serverId: id, type: "ADOPTED", toState: o.state, jobId: input.cause.jobId ?? null, message: `found on the cloud as ${o.providerId} (${o.state}) by ${by(input.cause)}; adopted`, details: { providerId: o.providerId, priceKnown: input.product !== null } },
  ]);
  return id;
}
