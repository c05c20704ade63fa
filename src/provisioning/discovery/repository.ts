// What discovering an account writes: its regions, subscriptions (capability per region), product and image catalog,
// status, and an account event for every change — through the job path's `Sql`, in the caller's transaction.
import { sqlFragment, sqlJoin, type Sql, type SqlFragment, type SqlPool } from "../../db/sql.js";
import type { Capability, DriverImage, DriverProduct, DriverRegion } from "../../clouds/driver.js";

/** One region as a discovery found it. */
export interface DiscoveredRegion {
  region: DriverRegion;
  /** What the account really has in the region; a capability missing here is not subscribed. */
  capabilities: Capability[];
  products: DriverProduct[];
  images: DriverImage[];
}

export interface Discovery {
  providerAccountId: string;
  regions: DiscoveredRegion[];
}

export type AccountEventType = "VALIDATED" | "VALIDATION_FAILED" | "REGION_ADDED" | "REGION_REMOVED" | "SUBSCRIBED" | "UNSUBSCRIBED";

interface NewEvent {
  type: AccountEventType;
  regionId: string | null;
  message: string;
}

/** What a discovery changed, for the job's result. */
export interface DiscoveryChanges {
  events: number;
  regions: number;
  subscriptions: number;
  products: number;
  images: number;
}

/** Rows per multi-row INSERT: keeps statements far below max_allowed_packet for big image catalogs. */
const CHUNK = 500;
/** account_events.message and accounts.status_message are VARCHAR(1024). */
const MAX_MESSAGE = 1024;

const clip = (s: string): string => (s.length > MAX_MESSAGE ? `${s.slice(0, MAX_MESSAGE - 1)}…` : s);

async function insertChunked<T>(rows: T[], insert: (values: SqlFragment) => Promise<number>, row: (r: T) => SqlFragment): Promise<void> {
  for (let i = 0; i < rows.length; i += CHUNK) await insert(sqlJoin(rows.slice(i, i + CHUNK).map(row), ", "));
}

async function insertEvents(tx: Sql, accountId: string, jobId: string | null, events: NewEvent[]): Promise<void> {
  await insertChunked(
    events,
    (values) => tx.execute`INSERT INTO account_events (account_id, type, region_id, job_id, message) VALUES ${values}`,
    (e) => sqlFragment`(${accountId}, ${e.type}, ${e.regionId}, ${jobId}, ${clip(e.message)})`,
  );
}

/**
 * Applies a successful discovery to the account: replaces its regions, subscriptions and catalog, records an event for
 * each region and subscription that appeared or went away (and VALIDATED when the account was not ACTIVE), and marks
 * it ACTIVE, validated and discovered, due again at `nextDiscoveryAt`. Null when the account is gone. Run it in the
 * job's completion transaction so it happens exactly once.
 */
export async function applyDiscovery(tx: Sql, input: { accountId: string; jobId: string; discovery: Discovery; now: Date; nextDiscoveryAt: Date }): Promise<DiscoveryChanges | null> {
  const { accountId, jobId, discovery, now } = input;
  const [account] = await tx.query<{ status: string }>`SELECT status FROM accounts WHERE id = ${accountId} FOR UPDATE`;
  if (!account) return null;
  const oldRegions = new Set((await tx.query<{ regionId: string }>`SELECT region_id AS regionId FROM account_regions WHERE account_id = ${accountId}`).map((r) => r.regionId));
  const oldSubs = new Set((await tx.query<{ regionId: string; capability: string }>`SELECT region_id AS regionId, capability FROM subscriptions WHERE account_id = ${accountId}`).map((s) => `${s.regionId}\u0000${s.capability}`));
  const newRegions = new Set(discovery.regions.map((r) => r.region.id));
  const newSubs = new Set(discovery.regions.flatMap((r) => r.capabilities.map((c) => `${r.region.id}\u0000${c}`)));

  const events: NewEvent[] = [];
  if (account.status !== "ACTIVE") events.push({ type: "VALIDATED", regionId: null, message: `credentials accepted by the cloud (provider account ${discovery.providerAccountId})` });
  for (const id of newRegions) if (!oldRegions.has(id)) events.push({ type: "REGION_ADDED", regionId: id, message: `region ${id} is available to the account` });
  for (const id of oldRegions) if (!newRegions.has(id)) events.push({ type: "REGION_REMOVED", regionId: id, message: `region ${id} is no longer available to the account` });
  const split = (key: string): [string, string] => key.split("\u0000") as [string, string];
  for (const key of newSubs) {
    if (oldSubs.has(key)) continue;
    const [region, capability] = split(key);
    events.push({ type: "SUBSCRIBED", regionId: region, message: `${capability} subscribed in ${region}` });
  }
  const gone = [...oldSubs].filter((key) => !newSubs.has(key)).map(split);
  for (const [region, capability] of gone) events.push({ type: "UNSUBSCRIBED", regionId: region, message: `${capability} no longer subscribed in ${region}` });

  await tx.execute`DELETE FROM account_regions WHERE account_id = ${accountId}`;
  await insertChunked(
    discovery.regions.map((r, position) => ({ ...r.region, position })),
    (values) => tx.execute`INSERT INTO account_regions (account_id, region_id, name, data_centers, position) VALUES ${values}`,
    (r) => sqlFragment`(${accountId}, ${r.id}, ${r.name}, ${JSON.stringify(r.dataCenters)}, ${r.position})`,
  );
  for (const [region, capability] of gone) await tx.execute`DELETE FROM subscriptions WHERE account_id = ${accountId} AND region_id = ${region} AND capability = ${capability}`;
  await insertChunked(
    [...newSubs].map(split),
    (values) => tx.execute`INSERT INTO subscriptions (account_id, region_id, capability, discovered_at) VALUES ${values} ON DUPLICATE KEY UPDATE discovered_at = VALUES(discovered_at)`,
    ([region, capability]) => sqlFragment`(${accountId}, ${region}, ${capability}, ${now})`,
  );
  // The catalog is replaced whole: a product or image the cloud no longer lists cannot be launched.
  await tx.execute`DELETE FROM catalog_products WHERE account_id = ${accountId}`;
  await tx.execute`DELETE FROM catalog_images WHERE account_id = ${accountId}`;
  const products = discovery.regions.flatMap((r) => r.products.map((p) => ({ ...p, regionId: r.region.id })));
  const images = discovery.regions.flatMap((r) => r.images.map((i) => ({ ...i, regionId: r.region.id })));
  await insertChunked(
    products,
    (values) => tx.execute`INSERT INTO catalog_products (account_id, region_id, product_id, name, cpus, memory_mb, disk_gb, hourly_price_micros, accrues_when_stopped, discovered_at) VALUES ${values}`,
    (p) => sqlFragment`(${accountId}, ${p.regionId}, ${p.id}, ${p.name}, ${p.cpus}, ${p.memoryMb}, ${p.diskGb}, ${p.hourlyPriceMicros}, ${p.accruesWhenStopped}, ${now})`,
  );
  await insertChunked(
    images,
    (values) => tx.execute`INSERT INTO catalog_images (account_id, region_id, image_id, name, platform, discovered_at) VALUES ${values}`,
    (i) => sqlFragment`(${accountId}, ${i.regionId}, ${i.id}, ${i.name}, ${i.platform}, ${now})`,
  );
  await insertEvents(tx, accountId, jobId, events);
  const message = clip(`credentials valid (provider account ${discovery.providerAccountId}); ${newRegions.size} region(s), ${newSubs.size} subscription(s)`);
  await tx.execute`
    UPDATE accounts
       SET status = 'ACTIVE', status_message = ${message}, provider_account_id = ${discovery.providerAccountId}, validated_at = ${now},
           discovered_at = ${now}, next_discovery_at = ${input.nextDiscoveryAt}, version = version + 1, updated_at = ${now}
     WHERE id = ${accountId}`;
  return { events: events.length, regions: newRegions.size, subscriptions: newSubs.size, products: products.length, images: images.length };
}

/**
 * Marks the account FAILED with `message` and records a VALIDATION_FAILED event for `jobId`, in a transaction of its
 * own. Idempotent per job: a second call for the same job (a retried delivery) changes nothing. A DISABLED or missing
 * account is left alone.
 */
export async function recordValidationFailure(sql: SqlPool, input: { accountId: string; jobId: string; message: string; now: Date }): Promise<void> {
  const { accountId, jobId } = input;
  await sql.transaction(async (tx) => {
    const [account] = await tx.query<{ status: string }>`SELECT status FROM accounts WHERE id = ${accountId} FOR UPDATE`;
    if (!account || account.status === "DISABLED") return;
    const [seen] = await tx.query<{ id: unknown }>`SELECT id FROM account_events WHERE account_id = ${accountId} AND job_id = ${jobId} AND type = 'VALIDATION_FAILED' LIMIT 1`;
    if (seen) return;
    const message = clip(input.message);
    await tx.execute`UPDATE accounts SET status = 'FAILED', status_message = ${message}, version = version + 1, updated_at = ${input.now} WHERE id = ${accountId}`;
    await insertEvents(tx, accountId, jobId, [{ type: "VALIDATION_FAILED", regionId: null, message }]);
  });
}

/** Deletes up to `limit` account events recorded before `before`, oldest first (through their created_at index). */
export function deleteAccountEventsBefore(db: Sql, before: Date, limit: number): Promise<number> {
  return db.execute`DELETE FROM account_events WHERE created_at < ${before} ORDER BY created_at LIMIT ${limit}`;
}
