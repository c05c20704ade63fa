// Etags of IAM objects (an opaque string over the row's version column), and the guard against removing the last admin.
import { AbortedError, FailedPreconditionError } from "../errors.js";

/** The etag of a row at `version`. Opaque to clients. */
export function etagOf(version: number): string {
  return `"v${version}"`;
}

/** The version an etag names, null for "" (unconditional), or -1 for something we never issued (never matches). */
export function versionOf(etag: string): number | null {
  if (etag === "") return null;
  const m = /^"v([1-9]\d{0,9})"$/.exec(etag);
  return m ? Number(m[1]) : -1;
}

export function staleEtag(resourceType: string, id: string): AbortedError {
  return new AbortedError(`${resourceType} ${JSON.stringify(id)} changed since it was read (etag mismatch); read it again and retry`, "ETAG_MISMATCH", { resourceType, id });
}

/**
 * Refuses a change that left no active admin (nobody could manage users or keys any more). Runs inside the change's
 * transaction, after it, so throwing rolls it back. Two concurrent changes that each remove a different admin can
 * still both pass (each sees the other admin); `dispatcher admin create-key` recovers from that.
 */
export async function keepAnAdmin(countActiveAdmins: () => Promise<number>): Promise<void> {
  if ((await countActiveAdmins()) === 0) throw new FailedPreconditionError("the change would leave no active admin", "LAST_ADMIN");
}
