// What a launch may ask for besides the catalog: firewalls, a key pair and a static address (each named by the
// dispatcher's id and checked in the caller's object scope: another account's is NOT_FOUND, like one that does not
// exist), and the user data and tags the guest gets. The same checks serve SetServerFirewalls. The launch job's
// payload carries the ids (never a secret) and the user data sealed (src/servers/user-data.ts).
import { z } from "zod";
import type { Sql } from "../db/sql.js";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError, type FieldViolation } from "../errors.js";
import type { Principal } from "../iam/principal.js";
import { inScope, scopeOf } from "../iam/scope.js";
import { requireTypeCapability } from "../resources/capabilities.js";
import { DELETED, type Resource } from "../resources/model.js";
import { findResource, insertResourceEvents } from "../resources/repository.js";
import { ADDRESS, FIREWALL, KEY_PAIR, type ResourceTypeSpec } from "../resources/types.js";
import { serverPayload } from "./kinds/common.js";

/** Firewalls a server may be in at once (EC2's default limit per network interface). */
export const MAX_SERVER_FIREWALLS = 5;

const id = z.string().min(1).max(64);

/** The server.launch payload: the server, the launch options by dispatcher id, and the user data sealed. */
export const launchPayload = serverPayload.extend({
  firewallIds: z.array(id).max(MAX_SERVER_FIREWALLS).optional(),
  keyPairId: id.optional(),
  addressId: id.optional(),
  /** sealUserData's output: never the script in clear. */
  userData: z.string().max(64 * 1024).optional(),
});
export type LaunchPayload = z.output<typeof launchPayload>;

export interface ResolvedOptions {
  payload: Pick<LaunchPayload, "firewallIds" | "keyPairId" | "addressId">;
  firewalls: Resource[];
  keyPair: Resource | null;
  address: Resource | null;
  /** For the LAUNCH_REQUESTED history line: ", in firewalls …, key pair …, address …" ("" for none). */
  summary: string;
  details: Record<string, string>;
}

export interface LaunchOptions {
  resolve(principal: Readonly<Principal>, accountId: string, regionId: string, input: { firewallIds?: readonly string[] | undefined; keyPairId?: string | undefined; addressId?: string | undefined }): Promise<ResolvedOptions>;
  firewalls(principal: Readonly<Principal>, accountId: string, regionId: string, ids: readonly string[], field?: string): Promise<Resource[]>;
  /** In the launch's transaction: a line in each named resource's history; the address re-checked ALLOCATED, locked. */
  recordRequested(tx: Sql, principal: Readonly<Principal>, serverId: string, jobId: string, resolved: ResolvedOptions): Promise<void>;
  recordFirewallUse(tx: Sql, firewalls: readonly Resource[], jobId: string, message: string): Promise<void>;
}

export function launchOptions(sql: Sql): LaunchOptions {
  /**
   * The resource of this type in the caller's scope and the server's account (NOT_FOUND otherwise); a violation on
   * `field` when it is in another region or deleted; FAILED_PRECONDITION while its create has not reached the cloud.
   */
  async function usable(principal: Readonly<Principal>, spec: ResourceTypeSpec, accountId: string, regionId: string, rid: string, field: string, violations: FieldViolation[]): Promise<Resource | null> {
    const r = await findResource(sql, rid);
    if (!r || r.type !== spec.type || !inScope(scopeOf(principal), r.accountId) || r.accountId !== accountId) throw new NotFoundError(spec.type, rid);
    if (r.regionId !== regionId) {
      violations.push({ field, description: `${spec.noun} ${rid} is in region ${r.regionId}, the server in ${regionId}` });
      return null;
    }
    if (r.state === DELETED) {
      violations.push({ field, description: `${spec.noun} ${rid} is deleted` });
      return null;
    }
    if (!r.providerId) throw new FailedPreconditionError(`${spec.noun} ${rid} has not reached its cloud yet: wait for its create job`, "RESOURCE_PENDING", [], { resource: rid });
    return r;
  }

  async function firewalls(principal: Readonly<Principal>, accountId: string, regionId: string, ids: readonly string[], field = "firewall_ids"): Promise<Resource[]> {
    const unique = [...new Set(ids)];
    if (unique.length > MAX_SERVER_FIREWALLS) throw InvalidArgumentError.field(field, `a server is in at most ${MAX_SERVER_FIREWALLS} firewalls`);
    await requireTypeCapability(sql, FIREWALL as ResourceTypeSpec, accountId, regionId);
    const violations: FieldViolation[] = [];
    const out: Resource[] = [];
    for (const [i, fid] of unique.entries()) {
      const r = await usable(principal, FIREWALL as ResourceTypeSpec, accountId, regionId, fid, `${field}[${i}]`, violations);
      if (r) out.push(r);
    }
    if (violations.length > 0) throw new InvalidArgumentError(violations);
    return out;
  }

  async function recordFirewallUse(tx: Sql, list: readonly Resource[], jobId: string, message: string): Promise<void> {
    await insertResourceEvents(tx, list.map((f) => ({ resourceId: f.id, type: "ACTION_REQUESTED", fromState: f.state, jobId, message })));
  }

  return {
    firewalls,
    recordFirewallUse,

    async resolve(principal, accountId, regionId, input) {
      const fw = input.firewallIds && input.firewallIds.length > 0 ? await firewalls(principal, accountId, regionId, input.firewallIds) : [];
      const violations: FieldViolation[] = [];
      let keyPair: Resource | null = null;
      let address: Resource | null = null;
      if (input.keyPairId) {
        await requireTypeCapability(sql, KEY_PAIR as ResourceTypeSpec, accountId, regionId);
        keyPair = await usable(principal, KEY_PAIR as ResourceTypeSpec, accountId, regionId, input.keyPairId, "key_pair_id", violations);
      }
      if (input.addressId) {
        await requireTypeCapability(sql, ADDRESS as ResourceTypeSpec, accountId, regionId);
        address = await usable(principal, ADDRESS as ResourceTypeSpec, accountId, regionId, input.addressId, "address_id", violations);
      }
      if (violations.length > 0) throw new InvalidArgumentError(violations);
      if (address) requireAllocated(address);
      const parts: string[] = [];
      const details: Record<string, string> = {};
      if (fw.length > 0) {
        parts.push(`in firewalls ${fw.map((f) => f.name || f.id).join(", ")}`);
        details.firewallIds = fw.map((f) => f.id).join(",");
      }
      if (keyPair) {
        parts.push(`with key pair ${keyPair.name}`);
        details.keyPairId = keyPair.id;
      }
      if (address) {
        parts.push(`with address ${address.details.ip ?? address.id} once running`);
        details.addressId = address.id;
      }
      return {
        payload: {
          ...(fw.length > 0 ? { firewallIds: fw.map((f) => f.id) } : {}),
          ...(keyPair ? { keyPairId: keyPair.id } : {}),
          ...(address ? { addressId: address.id } : {}),
        },
        firewalls: fw,
        keyPair,
        address,
        summary: parts.length > 0 ? `, ${parts.join(", ")}` : "",
        details,
      };
    },

    async recordRequested(tx, principal, serverId, jobId, resolved) {
      if (resolved.address) {
        const locked = await findResource(tx, resolved.address.id, true);
        if (!locked || locked.state === DELETED) throw InvalidArgumentError.field("address_id", `static address ${resolved.address.id} is deleted`);
        requireAllocated(locked);
        await insertResourceEvents(tx, [{ resourceId: locked.id, type: "ACTION_REQUESTED", fromState: locked.state, jobId, message: `association with server ${serverId} once it runs requested by ${principal.id} at its launch`, details: { serverId } }]);
      }
      await recordFirewallUse(tx, resolved.firewalls, jobId, `server ${serverId} launched in this firewall by ${principal.id}`);
      if (resolved.keyPair) {
        await insertResourceEvents(tx, [{ resourceId: resolved.keyPair.id, type: "ACTION_REQUESTED", fromState: resolved.keyPair.state, jobId, message: `server ${serverId} launched with this key pair by ${principal.id}`, details: { serverId } }]);
      }
    },
  };
}

function requireAllocated(address: Resource): void {
  if (address.state !== "ALLOCATED") {
    throw new FailedPreconditionError(`static address ${address.id} is ${address.state}; a launch takes an ALLOCATED address`, "ADDRESS_NOT_ALLOCATED", [], { address: address.id, state: address.state });
  }
}
