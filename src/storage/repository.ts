// The reads storage needs beyond the resource repository: servers by the dispatcher's id or the provider's, resources
// by the provider's id (what a volume's details name), and a product's root disk size (an image's admission).
import type { Sql } from "../db/sql.js";

export interface ServerRow {
  id: string;
  accountId: string;
  regionId: string;
  providerId: string | null;
  productId: string;
  state: string;
  /** The code it is billed to. */
  budgetCode: string;
}

export async function visibleServerRow(sql: Sql, id: string): Promise<ServerRow | null> {
  const [row] = await sql.query<ServerRow>`
    SELECT id, account_id AS accountId, region_id AS regionId, provider_id AS providerId, product_id AS productId, state, budget_code AS budgetCode
      FROM servers WHERE id = ${id}`;
  return row ?? null;
}

/** provider id → dispatcher id of the account's servers among `providerIds` (terminated ones last seen included). */
export async function serverIdsByProviderId(sql: Sql, accountId: string, providerIds: readonly string[]): Promise<Map<string, string>> {
  if (providerIds.length === 0) return new Map();
  const rows = await sql.query<{ id: string; providerId: string }>`
    SELECT id, provider_id AS providerId FROM servers WHERE account_id = ${accountId} AND provider_id IN (${[...providerIds]}) ORDER BY created_at`;
  return new Map(rows.map((r) => [r.providerId, r.id]));
}

/** provider id → dispatcher id of the account's resources among `providerIds` (the newest row of each). */
export async function resourceIdsByProviderId(sql: Sql, accountId: string, providerIds: readonly string[]): Promise<Map<string, string>> {
  if (providerIds.length === 0) return new Map();
  const rows = await sql.query<{ id: string; providerId: string }>`
    SELECT id, provider_id AS providerId FROM resources WHERE account_id = ${accountId} AND provider_id IN (${[...providerIds]}) ORDER BY id`;
  return new Map(rows.map((r) => [r.providerId, r.id]));
}

/** The root disk of a product as discovery recorded it; 0 when unknown. */
export async function productDiskGiB(sql: Sql, accountId: string, regionId: string, productId: string): Promise<number> {
  const [row] = await sql.query<{ diskGb: number }>`
    SELECT disk_gb AS diskGb FROM catalog_products WHERE account_id = ${accountId} AND region_id = ${regionId} AND product_id = ${productId}`;
  return Number(row?.diskGb ?? 0);
}
