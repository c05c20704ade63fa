// The resource inventory's one way in for what a cloud reports: an observation (or "gone") becomes the row's new
// provider id, name, state, tags and details, and every change an event — whether a job or discovery saw it.
import type { ResourceObservation } from "../clouds/resources.js";
import { newId } from "../db/ids.js";
import type { Sql } from "../db/sql.js";
import { DELETED, type Resource } from "./model.js";
import { findResource, insertResource, insertResourceEvents, updateResource, type NewResourceEvent, type ResourceChange } from "./repository.js";
import { hourlyPriceOf, isPriced, type ResourceTypeSpec } from "./types.js";

export interface ObservationCause {
  /** The job that saw it; null for discovery without a job. */
  jobId: string | null;
}

const sameMap = (a: Record<string, string>, b: Record<string, string>): boolean => {
  const ak = Object.keys(a);
  return ak.length === Object.keys(b).length && ak.every((k) => a[k] === b[k]);
};

/** The row's fields as the observation has them (details: the type's and the provider's, non-secret both). */
function fieldsOf(spec: ResourceTypeSpec, o: ResourceObservation): Required<Omit<ResourceChange, "hourlyPriceMicros">> {
  return { providerId: o.providerId, name: o.name, state: o.state, tags: { ...o.tags }, details: { ...o.details, ...spec.detailsOf(o) } };
}

/**
 * Applies what was seen to a row the caller holds (locked, in its transaction): null means the provider no longer
 * knows the resource, which ends it DELETED. Returns the events written (none when nothing changed).
 */
export async function applyObservation(tx: Sql, spec: ResourceTypeSpec, row: Resource, seen: ResourceObservation | null, cause: ObservationCause): Promise<NewResourceEvent[]> {
  const events: NewResourceEvent[] = [];
  const change: ResourceChange = {};
  const base = { resourceId: row.id, jobId: cause.jobId };
  if (!seen) {
    if (row.state === DELETED) return [];
    change.state = DELETED;
    events.push({ ...base, type: "STATE_CHANGED", fromState: row.state, toState: DELETED, message: `${spec.noun} is gone from its cloud` });
  } else {
    const now = fieldsOf(spec, seen);
    if (row.providerId !== now.providerId) {
      change.providerId = now.providerId;
      events.push({ ...base, type: "PROVIDER_ID_ASSIGNED", message: `the cloud knows it as ${now.providerId}`, details: { providerId: now.providerId } });
    }
    if (now.name && row.name !== now.name) change.name = now.name;
    if (row.state !== now.state) {
      change.state = now.state;
      events.push({ ...base, type: "STATE_CHANGED", fromState: row.state, toState: now.state, message: `${spec.noun} is ${now.state}` });
    }
    if (!sameMap(row.tags, now.tags)) {
      change.tags = now.tags;
      events.push({ ...base, type: "TAGS_CHANGED", message: "tags changed", details: { tags: now.tags } });
    }
    if (!sameMap(row.details, now.details)) {
      change.details = now.details;
      const changed: Record<string, unknown> = changedKeys(row.details, now.details);
      // A type priced by size costs what it now holds from here on (a snapshot's size once known, a bucket's bytes).
      const price = hourlyPriceOf(spec, now.details);
      if (isPriced(spec) && price !== row.hourlyPriceMicros) {
        change.hourlyPriceMicros = price;
        changed.hourlyPriceMicros = price.toString();
      }
      events.push({ ...base, type: "DETAILS_CHANGED", message: "details changed", details: changed });
    }
  }
  if (Object.keys(change).length === 0) return [];
  await updateResource(tx, row.id, change);
  await insertResourceEvents(tx, events);
  return events;
}

/** Which keys changed, with their new values (a firewall's rules are one key: the history shows the new set). */
function changedKeys(before: Record<string, string>, after: Record<string, string>): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  for (const k of new Set([...Object.keys(before), ...Object.keys(after)])) if (before[k] !== after[k]) out[k] = after[k] ?? null;
  return out;
}

/** Locks the row and applies the observation; null when the row does not exist. */
export async function recordObservation(tx: Sql, spec: ResourceTypeSpec, resourceId: string, seen: ResourceObservation | null, cause: ObservationCause): Promise<Resource | null> {
  const row = await findResource(tx, resourceId, true);
  if (!row) return null;
  await applyObservation(tx, spec, row, seen, cause);
  return findResource(tx, resourceId);
}

/** A resource the dispatcher did not create, found in the account by discovery: a DISCOVERED row with its history. */
export async function adoptResource(tx: Sql, spec: ResourceTypeSpec, accountId: string, seen: ResourceObservation, cause: ObservationCause, defaultBudgetCode: string): Promise<string> {
  const id = newId();
  const f = fieldsOf(spec, seen);
  await insertResource(tx, {
    id,
    accountId,
    regionId: seen.regionId,
    type: spec.type,
    providerId: f.providerId,
    name: f.name,
    state: f.state,
    origin: "DISCOVERED",
    budgetCode: isPriced(spec) ? defaultBudgetCode : "",
    tags: f.tags,
    details: f.details,
    clientToken: seen.clientToken,
    hourlyPriceMicros: hourlyPriceOf(spec, f.details),
    createdBy: "discovery",
  });
  await insertResourceEvents(tx, [{ resourceId: id, type: "ADOPTED", toState: f.state, jobId: cause.jobId, message: `${spec.noun} ${f.providerId} found in the account and adopted` }]);
  return id;
}
