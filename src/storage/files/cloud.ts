// How an object call reaches the bucket's cloud from the dispatcher itself, without a job: the account and its driver
// are loaded, the credentials fetched from KM for this one call (in memory while it runs, recorded in KM's audit with
// the call's purpose), and a driver failure becomes the domain error the caller should see. Object bytes flow
// caller ⇄ dispatcher ⇄ driver directly; no worker and no queue is in their way.
import { loadCloudAccount } from "../../clouds/access.js";
import { DriverError, type DriverCallOptions, type DriverTarget } from "../../clouds/driver.js";
import type { DriverRegistry } from "../../clouds/registry.js";
import { serviceOf, type BlobStoreService } from "../../clouds/resources.js";
import type { Sql } from "../../db/sql.js";
import { DeadlineExceededError, DomainError, FailedPreconditionError, InvalidArgumentError, NotFoundError, PermissionDeniedError, ResourceExhaustedError, UnauthenticatedError, UnavailableError } from "../../errors.js";
import type { KmClient } from "../../km/client.js";

/** The longest one transfer may run when its caller set no deadline (a stream has none by default). */
export const MAX_TRANSFER_MS = 12 * 60 * 60 * 1000;

export interface CloudCall {
  signal: AbortSignal;
  deadline: Date;
}

export interface FilesCloudDeps {
  sql: Sql;
  drivers: DriverRegistry;
  km: () => KmClient;
}

export type OnBlobStore = <T>(accountId: string, purpose: string, call: CloudCall, fn: (blobs: BlobStoreService, target: DriverTarget, options: DriverCallOptions) => Promise<T>) => Promise<T>;

export function filesCloud(deps: FilesCloudDeps): OnBlobStore {
  return async (accountId, purpose, call, fn) => {
    const account = await loadCloudAccount(deps.sql, accountId);
    if (!account) throw new NotFoundError("account", accountId);
    if (account.status !== "ACTIVE") throw new FailedPreconditionError(`account ${account.id} is ${account.status}: its files cannot be reached`, "ACCOUNT_NOT_ACTIVE", [], { account: account.id, status: account.status });
    const deadline = new Date(Math.min(call.deadline.getTime(), Date.now() + MAX_TRANSFER_MS));
    const options: DriverCallOptions = { signal: call.signal, deadline };
    try {
      const driver = deps.drivers.get(account.cloud.driver);
      const blobs = serviceOf(driver, "blobStore");
      return await deps.km().useCredential(
        { id: account.credentialId, accountId: account.id, purpose },
        (credentials) => fn(blobs, { cloud: account.cloud, account: { id: account.id, providerAccountId: account.providerAccountId }, credentials }, options),
        { signal: call.signal, deadline },
      );
    } catch (err) {
      if (call.signal.aborted && call.signal.reason instanceof DomainError) throw call.signal.reason;
      throw fromDriver(err, account.cloud.name);
    }
  };
}

/** A driver or KM failure as the caller should see it; driver messages are written to be shown, never carry a secret. */
export function fromDriver(err: unknown, cloud: string): unknown {
  if (!(err instanceof DriverError)) {
    if (err instanceof NotFoundError && err.message.includes("credential")) return new FailedPreconditionError(`the credentials of the account are gone from KM`, "CREDENTIALS_MISSING");
    if (err instanceof PermissionDeniedError || err instanceof UnauthenticatedError) return new UnavailableError(`KM refused this dispatcher the account's credentials: ${err.message}`, "KM_REFUSED");
    return err;
  }
  const message = `cloud ${cloud}: ${err.message}`;
  switch (err.code) {
    case "NOT_FOUND":
      return new FailedPreconditionError(message, "PROVIDER_NOT_FOUND", [], { cloud });
    case "INVALID":
      return InvalidArgumentError.field("", message);
    case "CONFLICT":
      return new FailedPreconditionError(message, "PROVIDER_CONFLICT", [], { cloud });
    case "THROTTLED":
    case "QUOTA":
      return new ResourceExhaustedError(message, err.code === "QUOTA" ? "PROVIDER_QUOTA" : "PROVIDER_THROTTLED", err.code === "THROTTLED" ? 1_000 : null, { cloud });
    case "TIMEOUT":
      return new DeadlineExceededError(message);
    case "AUTH":
      return new FailedPreconditionError(`${message} (the account's credentials were refused)`, "PROVIDER_AUTH", [], { cloud });
    case "UNSUPPORTED":
      return new FailedPreconditionError(message, "PROVIDER_UNSUPPORTED", [], { cloud });
    case "UNAVAILABLE":
    case "INTERNAL":
      return new UnavailableError(message, "PROVIDER_UNAVAILABLE", { cause: err });
  }
}
