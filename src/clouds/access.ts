// How a job reaches an account's cloud: loads the account and its cloud, fetches the credentials from KM for this
// one call (in memory only, tied to the job for KM's audit), calls the driver with the job's signal and a deadline,
// and turns every failure into a job outcome — a KM outage or a throttled provider retries, bad credentials fail.
import type { JobContext } from "../jobs/catalog.js";
import { PermanentJobError, RetryableJobError } from "../jobs/errors.js";
import type { Sql } from "../db/sql.js";
import { DeadlineExceededError, DomainError, NotFoundError, PermissionDeniedError, UnauthenticatedError, UnavailableError } from "../errors.js";
import { DriverError, type CloudDriver, type DriverCallOptions, type DriverTarget } from "./driver.js";

/** An account with what is needed to reach its cloud; no secret. */
export interface CloudAccount {
  id: string;
  name: string;
  status: "PENDING" | "ACTIVE" | "FAILED" | "DISABLED";
  credentialId: string;
  providerAccountId: string | null;
  defaultBudgetCode: string | null;
  cloud: { id: string; name: string; driver: string; endpoint: string };
}

interface AccountJoinRow {
  id: string;
  name: string;
  status: CloudAccount["status"];
  credential_id: string;
  provider_account_id: string | null;
  default_budget_code: string | null;
  cloud_id: string;
  cloud_name: string;
  driver: string;
  endpoint: string;
}

export async function loadCloudAccount(sql: Sql, accountId: string): Promise<CloudAccount | null> {
  const [row] = await sql.query<AccountJoinRow>`
    SELECT a.id, a.name, a.status, a.credential_id, a.provider_account_id, a.default_budget_code,
           c.id AS cloud_id, c.name AS cloud_name, c.driver, c.endpoint
      FROM accounts a JOIN clouds c ON c.id = a.cloud_id
     WHERE a.id = ${accountId}`;
  if (!row) return null;
  return {
    id: row.id,
    name: row.name,
    status: row.status,
    credentialId: row.credential_id,
    providerAccountId: row.provider_account_id,
    defaultBudgetCode: row.default_budget_code,
    cloud: { id: row.cloud_id, name: row.cloud_name, driver: row.driver, endpoint: row.endpoint },
  };
}

/** Default time one driver call may take when the caller names none. */
export const DRIVER_CALL_TIMEOUT_MS = 60_000;

export interface WithCloudOptions {
  /** What the credentials are for, recorded in KM's audit (e.g. "server.launch"). */
  purpose: string;
  /** Per-call budget; default DRIVER_CALL_TIMEOUT_MS. */
  timeoutMs?: number;
}

/**
 * Runs `fn` with the account's driver, a target carrying the credentials, and call options bound to the job's signal.
 * The credentials exist only while `fn` runs. Throws RetryableJobError or PermanentJobError (never a raw error) so the
 * job's outcome says what went wrong without ever carrying a secret.
 */
export async function withCloud<T>(
  ctx: JobContext,
  accountId: string,
  options: WithCloudOptions,
  fn: (driver: CloudDriver, target: DriverTarget, call: DriverCallOptions, account: CloudAccount) => Promise<T>,
): Promise<T> {
  const account = await loadCloudAccount(ctx.sql, accountId);
  if (!account) throw new PermanentJobError(`account ${accountId} does not exist`, "NOT_FOUND");
  let driver: CloudDriver;
  try {
    driver = ctx.drivers.get(account.cloud.driver);
  } catch (err) {
    throw toJobError(err, account);
  }
  const deadline = new Date(Date.now() + (options.timeoutMs ?? DRIVER_CALL_TIMEOUT_MS));
  const call: DriverCallOptions = { signal: ctx.signal, deadline };
  try {
    return await ctx.km().useCredential(
      { id: account.credentialId, accountId: account.id, jobId: ctx.jobId, purpose: options.purpose },
      (credentials) => fn(driver, { cloud: account.cloud, account: { id: account.id, providerAccountId: account.providerAccountId }, credentials }, call, account),
      { signal: ctx.signal, deadline },
    );
  } catch (err) {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    throw toJobError(err, account);
  }
}

/** A driver or KM failure as a job outcome. Messages name the account and cloud, never a credential. */
export function toJobError(err: unknown, account: Pick<CloudAccount, "id" | "cloud">): Error {
  if (err instanceof RetryableJobError || err instanceof PermanentJobError) return err;
  if (err instanceof DriverError) {
    const details = { driverCode: err.code, ...(err.providerCode ? { providerCode: err.providerCode } : {}), cloud: account.cloud.name, account: account.id };
    const message = `${account.cloud.driver} cloud ${account.cloud.name}: ${err.message}`;
    if (err.retryable) return new RetryableJobError(message, DRIVER_STATUS[err.code], { cause: err });
    return new PermanentJobError(message, DRIVER_STATUS[err.code], details, { cause: err });
  }
  if (err instanceof UnavailableError || err instanceof DeadlineExceededError) {
    return new RetryableJobError(`KM is unavailable for the credentials of account ${account.id}: ${err.message}`, "UNAVAILABLE", { cause: err });
  }
  if (err instanceof NotFoundError) return new PermanentJobError(`the credentials of account ${account.id} are gone from KM`, "FAILED_PRECONDITION", { account: account.id }, { cause: err });
  // A worker KM refuses is misconfigured, which an operator can fix: retry rather than fail users' jobs at once.
  if (err instanceof PermissionDeniedError || err instanceof UnauthenticatedError) return new RetryableJobError(`KM refused this process the credentials of account ${account.id}: ${err.message}`, "PERMISSION_DENIED", { cause: err });
  if (err instanceof DomainError) return new RetryableJobError(`KM: ${err.message}`, err.code, { cause: err });
  return err instanceof Error ? err : new Error(String(err));
}

const DRIVER_STATUS: Readonly<Record<DriverError["code"], string>> = {
  THROTTLED: "RESOURCE_EXHAUSTED",
  TIMEOUT: "DEADLINE_EXCEEDED",
  UNAVAILABLE: "UNAVAILABLE",
  AUTH: "PERMISSION_DENIED",
  NOT_FOUND: "NOT_FOUND",
  INVALID: "INVALID_ARGUMENT",
  CONFLICT: "FAILED_PRECONDITION",
  QUOTA: "RESOURCE_EXHAUSTED",
  UNSUPPORTED: "UNIMPLEMENTED",
  INTERNAL: "INTERNAL",
};
