// The capability gate: whether an account has a capability in a region, read from what discovery last recorded (the
// subscriptions table) on every call, so a capability re-discovery adds turns its services on without a restart.
import type { Sql } from "../db/sql.js";
import { FailedPreconditionError } from "../errors.js";
import type { ResourceTypeSpec } from "./types.js";
import { capabilityOf } from "./types.js";

export async function hasCapability(sql: Sql, accountId: string, regionId: string, capability: string): Promise<boolean> {
  const rows = await sql.query<{ n: number }>`
    SELECT 1 AS n FROM subscriptions WHERE account_id = ${accountId} AND region_id = ${regionId} AND capability = ${capability}`;
  return rows.length > 0;
}

/** FAILED_PRECONDITION naming the capability when the region lacks the type's. */
export async function requireTypeCapability(sql: Sql, spec: Pick<ResourceTypeSpec, "service" | "noun">, accountId: string, regionId: string): Promise<void> {
  const capability = capabilityOf(spec);
  if (await hasCapability(sql, accountId, regionId, capability)) return;
  throw new FailedPreconditionError(
    `account ${accountId} has no ${capability} capability in region ${regionId}: ${spec.noun}s are not available there`,
    "CAPABILITY_MISSING",
    [],
    { capability, account: accountId, region: regionId },
  );
}
