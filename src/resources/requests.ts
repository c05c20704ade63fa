// The requests every resource type's API shares, validated for its handlers (INVALID_ARGUMENT with field violations):
// a list (account, region and tag filters, a page), an event history (a resource id, a page of event ids), and a
// change of one resource (its id, an idempotency key).
import { IDEMPOTENCY_KEY_RULES } from "../jobs/mapper.js";
import { REGION_ID_RULES } from "../provisioning/mapper.js";
import { afterIdFromToken, ID_RULES, validateOne } from "../rpc/validate.js";

export interface ResourceListRequest {
  pageSize: number;
  pageToken: string;
  accountId: string;
  regionId: string;
  tags: Record<string, string>;
  includeDeleted: boolean;
}

export interface ResourceListFilters {
  accountId: string | undefined;
  regionId: string | undefined;
  tags: Record<string, string> | undefined;
  includeDeleted: true | undefined;
}

/** A list's filters (also what its page tokens are bound to), page size and cursor. */
export function resourceListQuery(req: ResourceListRequest): ResourceListFilters & { pageSize: number; afterId: string | undefined; filters: ResourceListFilters } {
  return validateOne((v) => {
    const filters: ResourceListFilters = {
      accountId: v.optionalString("account_id", req.accountId, ID_RULES) || undefined,
      regionId: v.optionalString("region_id", req.regionId, REGION_ID_RULES) || undefined,
      tags: Object.keys(req.tags ?? {}).length > 0 ? { ...req.tags } : undefined,
      includeDeleted: req.includeDeleted || undefined,
    };
    for (const k of Object.keys(req.tags ?? {})) if (k.length < 1 || k.length > 128) v.add("tags", "a tag key has 1 to 128 characters");
    return { ...filters, pageSize: v.pageSize("page_size", req.pageSize), afterId: afterIdFromToken(v, req.pageToken, filters), filters };
  });
}

/** An event history's resource id, page size and cursor (event ids are positive integers). */
export function resourceEventsQuery(req: { id: string; pageSize: number; pageToken: string }): { id: string; pageSize: number; afterId: string | undefined } {
  return validateOne((v) => {
    const id = v.string("id", req.id, ID_RULES);
    let afterId = afterIdFromToken(v, req.pageToken, { id });
    if (afterId !== undefined && !/^\d{1,19}$/.test(afterId)) {
      v.add("page_token", "is not a page token of this query");
      afterId = undefined;
    }
    return { id, pageSize: v.pageSize("page_size", req.pageSize), afterId };
  });
}

/** A change of one resource: its id and the optional idempotency key. */
export function resourceChange(req: { id: string; idempotencyKey: string }): { id: string; key: string } {
  return validateOne((v) => ({ id: v.string("id", req.id, ID_RULES), key: v.optionalString("idempotency_key", req.idempotencyKey, IDEMPOTENCY_KEY_RULES) }));
}
