// The job kinds of firewalls, static addresses and key pairs, each one call of the type's driver service made through
// the generic kind factory (src/resources/kinds.ts): done when the type's get() shows the change — a rule visible, an
// address associated, a key registered, a resource gone.
import { z } from "zod";
import { RULE_DIRECTIONS, RULE_PROTOCOLS, sameRule, type FirewallRule } from "../clouds/firewall-rules.js";
import { serviceOf, type AddressObservation, type FirewallObservation } from "../clouds/resources.js";
import type { JobKind } from "../jobs/catalog.js";
import { PermanentJobError } from "../jobs/errors.js";
import { defineDeleteKind, defineResourceKind, refOf, resourcePayload } from "../resources/kinds.js";
import { ADDRESS, FIREWALL, KEY_PAIR } from "../resources/types.js";
import { findServer } from "../servers/repository.js";

export const FIREWALL_CREATE_KIND = "firewall.create";
export const FIREWALL_AUTHORIZE_KIND = "firewall.authorize";
export const FIREWALL_REVOKE_KIND = "firewall.revoke";
export const FIREWALL_DELETE_KIND = "firewall.delete";
export const ADDRESS_ALLOCATE_KIND = "address.allocate";
export const ADDRESS_ASSOCIATE_KIND = "address.associate";
export const ADDRESS_DISASSOCIATE_KIND = "address.disassociate";
export const ADDRESS_RELEASE_KIND = "address.release";
export const KEY_PAIR_IMPORT_KIND = "key_pair.import";
export const KEY_PAIR_DELETE_KIND = "key_pair.delete";

const tags = (t: Record<string, string>) => ({ ...t });

// ---- firewalls ----

export const firewallCreatePayload = resourcePayload.extend({ description: z.string().max(255).default("") });

export const firewallCreateKind = defineResourceKind({
  kind: FIREWALL_CREATE_KIND,
  spec: FIREWALL,
  permission: "firewalls.write",
  payload: firewallCreatePayload,
  act: ({ driver, target, call }, r, p) => serviceOf(driver, "firewalls").create(target, { regionId: r.regionId, name: r.name, clientToken: r.id, tags: tags(r.tags), description: p.description }, call),
  done: (seen) => seen !== null,
});

/** A rule as a job carries it: a peer firewall by its provider id (the service resolved the dispatcher's id). */
const ruleSchema: z.ZodType<FirewallRule> = z.object({
  direction: z.enum(RULE_DIRECTIONS),
  protocol: z.enum(RULE_PROTOCOLS),
  ports: z.object({ from: z.number().int(), to: z.number().int() }).nullable(),
  peer: z.union([z.object({ cidr: z.string() }), z.object({ firewallId: z.string() })]),
  description: z.string().optional(),
}) as z.ZodType<FirewallRule>;

export const rulePayload = resourcePayload.extend({ rule: ruleSchema });
type RulePayload = z.output<typeof rulePayload>;

const hasRule = (seen: FirewallObservation | null, p: RulePayload): boolean => !!seen && seen.rules.some((r) => sameRule(r, p.rule));

export const firewallAuthorizeKind = defineResourceKind({
  kind: FIREWALL_AUTHORIZE_KIND,
  spec: FIREWALL,
  permission: "firewalls.write",
  payload: rulePayload,
  act: ({ driver, target, call }, r, p) => serviceOf(driver, "firewalls").authorize(target, refOf(r), p.rule, call),
  done: (seen, _r, p) => hasRule(seen, p),
});

export const firewallRevokeKind = defineResourceKind({
  kind: FIREWALL_REVOKE_KIND,
  spec: FIREWALL,
  permission: "firewalls.write",
  payload: rulePayload,
  act: ({ driver, target, call }, r, p) => serviceOf(driver, "firewalls").revoke(target, refOf(r), p.rule, call),
  done: (seen, _r, p) => !!seen && !hasRule(seen, p),
});

export const firewallDeleteKind = defineDeleteKind({ kind: FIREWALL_DELETE_KIND, spec: FIREWALL, permission: "firewalls.write", createKind: FIREWALL_CREATE_KIND });

// ---- static addresses ----

export const addressAllocateKind = defineResourceKind({
  kind: ADDRESS_ALLOCATE_KIND,
  spec: ADDRESS,
  permission: "addresses.write",
  payload: resourcePayload,
  act: ({ driver, target, call }, r) => serviceOf(driver, "addresses").allocate(target, { regionId: r.regionId, name: r.name, clientToken: r.id, tags: tags(r.tags) }, call),
  done: (seen) => seen !== null,
});

export const associatePayload = resourcePayload.extend({ serverId: z.string().min(1).max(64) });

export const addressAssociateKind = defineResourceKind({
  kind: ADDRESS_ASSOCIATE_KIND,
  spec: ADDRESS,
  permission: "addresses.write",
  payload: associatePayload,
  async act({ driver, target, call, ctx }, r, p) {
    // The server's provider id is read when the job runs: an association asked for at launch waits for it.
    const server = await findServer(ctx.sql, p.serverId);
    if (!server || server.accountId !== r.accountId) throw new PermanentJobError(`server ${p.serverId} does not exist in account ${r.accountId}`, "NOT_FOUND", { server: p.serverId });
    if (!server.providerId || server.state !== "RUNNING") throw new PermanentJobError(`server ${p.serverId} is ${server.state}; an address is associated with a RUNNING server`, "FAILED_PRECONDITION", { server: p.serverId, state: server.state });
    if (server.regionId !== r.regionId) throw new PermanentJobError(`server ${p.serverId} is in ${server.regionId}, the address in ${r.regionId}`, "FAILED_PRECONDITION", { server: p.serverId });
    await serviceOf(driver, "addresses").associate(target, refOf(r), { regionId: server.regionId, providerId: server.providerId }, call);
  },
  async done(seen: AddressObservation | null, _r, p, ctx) {
    if (!seen || seen.state !== "ASSOCIATED") return false;
    const server = await findServer(ctx.sql, p.serverId);
    return !!server?.providerId && seen.serverProviderId === server.providerId;
  },
});

export const addressDisassociateKind = defineResourceKind({
  kind: ADDRESS_DISASSOCIATE_KIND,
  spec: ADDRESS,
  permission: "addresses.write",
  payload: resourcePayload,
  act: ({ driver, target, call }, r) => serviceOf(driver, "addresses").disassociate(target, refOf(r), call),
  done: (seen) => !!seen && seen.serverProviderId === null,
});

export const addressReleaseKind = defineDeleteKind({ kind: ADDRESS_RELEASE_KIND, spec: ADDRESS, permission: "addresses.write", createKind: ADDRESS_ALLOCATE_KIND });

// ---- key pairs ----

/** The public key only: a created key pair's private key never reaches a job (the service made it and handed it back). */
export const keyImportPayload = resourcePayload.extend({ publicKey: z.string().min(1).max(16_384) });

export const keyPairImportKind = defineResourceKind({
  kind: KEY_PAIR_IMPORT_KIND,
  spec: KEY_PAIR,
  permission: "keypairs.write",
  payload: keyImportPayload,
  act: ({ driver, target, call }, r, p) => serviceOf(driver, "keyPairs").importKey(target, { regionId: r.regionId, name: r.name, clientToken: r.id, tags: tags(r.tags), publicKey: p.publicKey }, call),
  done: (seen) => seen !== null,
});

export const keyPairDeleteKind = defineDeleteKind({ kind: KEY_PAIR_DELETE_KIND, spec: KEY_PAIR, permission: "keypairs.write", createKind: KEY_PAIR_IMPORT_KIND });

export const NETWORK_KINDS: JobKind<never>[] = [
  firewallCreateKind,
  firewallAuthorizeKind,
  firewallRevokeKind,
  firewallDeleteKind,
  addressAllocateKind,
  addressAssociateKind,
  addressDisassociateKind,
  addressReleaseKind,
  keyPairImportKind,
  keyPairDeleteKind,
] as unknown as JobKind<never>[];
