// The KM service: stores credentials under envelope encryption, hands them (sealed for the channel) to service
// principals, lists metadata, crypto-shreds, rotates and re-wraps — every operation audited, fail closed.
import { DomainError, FailedPreconditionError, NotFoundError, PermissionDeniedError } from "../errors.js";
import type { Logger } from "../log.js";
import { createBatcher, fulfilled } from "../db/batcher.js";
import { newId } from "../db/ids.js";
import type { AuditAction, AuditLog, AuditRecord } from "./audit.js";
import { createChannelSealer, type ChannelSealed } from "./channel.js";
import { EnvelopeError, openRecord, rewrapRecord, sealRecord, type RecordContext } from "./crypto.js";
import { ENCRYPTION_LIMITS, reserveEncryptions, rotateToNewest, type EncryptionLimits } from "./key-versions.js";
import type { Keyring } from "./keys.js";
import { GET_BATCH_MAX, type BatchGetInput, type BatchGetResult, type Caller, type CredentialInfo, type GetInput, type KmService, type SealedCredential } from "./model.js";
import * as repo from "./repository.js";
import { Violations } from "./validate.js";

export interface KmServiceDeps {
  /** The credentials database. */
  pool: repo.CredentialsPool;
  masterKeys: Keyring;
  channelKeys: Keyring;
  audit: AuditLog;
  log: Logger;
  now: () => Date;
  limits?: EncryptionLimits;
}

const REWRAP_BATCH = 200;
/** GetCredential row reads of concurrent calls share one SELECT … WHERE id IN (…) of at most this many ids. */
const READ_BATCH = 200;
const TRACEPARENT = /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

const info = (r: repo.CredentialRow): CredentialInfo => ({ id: r.id, accountId: r.accountId, type: r.type, labels: r.labels, keyVersion: r.keyVersion, createTime: r.createdAt, updateTime: r.updatedAt });
const context = (r: { id: string; accountId: string; type: string }): RecordContext => ({ recordId: r.id, accountId: r.accountId, type: r.type });

/** A credential that exists but cannot be opened: the cause, in words an operator can act on; never any plaintext. */
function unreadable(id: string, err: EnvelopeError): FailedPreconditionError {
  if (err.failure === "KEY_VERSION_UNKNOWN") return new FailedPreconditionError(`credential ${id} cannot be decrypted: ${err.message} on this KM instance`, "MASTER_KEY_VERSION_UNAVAILABLE", [], { id });
  return new FailedPreconditionError(`credential ${id} failed its integrity check (${err.failure.toLowerCase().replace(/_/g, " ")}): its stored ciphertext, key version or row was altered; it cannot be decrypted`, "CREDENTIAL_INTEGRITY_FAILED", [], { id });
}

export function createKmService(deps: KmServiceDeps): KmService {
  const { pool, masterKeys, channelKeys, audit, log } = deps;
  const limits = deps.limits ?? ENCRYPTION_LIMITS;
  const channel = createChannelSealer(channelKeys);
  // Two reads may be under way at once, so a call arriving during a read does not wait for it to end.
  const reads = createBatcher<string, repo.CredentialRow | undefined>({
    maxInFlight: 2,
    maxBatch: READ_BATCH,
    gather: "turn",
    async run(ids) {
      const rows = await repo.readCredentials(pool, [...new Set(ids)]);
      return fulfilled(ids.map((id) => rows.get(id)));
    },
  });

  const record = (caller: Caller, action: AuditAction, fields: Omit<AuditRecord, "time" | "action" | "principal" | "traceId">): AuditRecord => ({
    time: deps.now(),
    action,
    principal: caller.principal.id,
    traceId: caller.traceId || undefined,
    ...fields,
  });

  /** Audits a failed request (best effort: the request fails either way) and rethrows its error. */
  async function failed(caller: Caller, action: AuditAction, fields: Omit<AuditRecord, "time" | "action" | "principal" | "traceId" | "result">, err: unknown): Promise<never> {
    const result = err instanceof DomainError ? err.code : "INTERNAL";
    await audit.record(record(caller, action, { ...fields, result })).catch((e: unknown) => log.error({ err: e }, "audit record of a failed request could not be written"));
    throw err;
  }

  function checkGet(input: GetInput): void {
    const v = new Violations();
    v.credentialId("id", input.id);
    v.accountId("account_id", input.accountId);
    v.jobId("job_id", input.jobId);
    v.note("purpose", input.purpose);
    v.throwIfAny();
  }

  const getAudit = (input: GetInput) => ({ credentialId: input.id, accountId: input.accountId, jobId: input.jobId, detail: input.purpose || undefined });

  /** The credential's fields in clear for `caller`, or the error its get fails with (not audited yet). */
  async function openFor(caller: Caller, input: GetInput): Promise<{ info: CredentialInfo; plaintext: Buffer }> {
    // Defence in depth: the permission table already keeps credentials.use from every principal but services.
    if (caller.principal.kind !== "service") throw new PermissionDeniedError("credentials are handed to service principals only", "SERVICE_PRINCIPAL_REQUIRED");
    const row = await reads.submit(input.id);
    // Another account's credential is indistinguishable from a missing one.
    if (!row || row.deletedAt || !row.wrappedKey || !row.ciphertext || row.accountId !== input.accountId) throw new NotFoundError("credential", input.id);
    try {
      return { info: info(row), plaintext: openRecord(masterKeys.lookup, context(row), { keyVersion: row.keyVersion, wrappedKey: row.wrappedKey, ciphertext: row.ciphertext }) };
    } catch (err) {
      if (err instanceof EnvelopeError) {
        log.error({ credentialId: row.id, failure: err.failure, keyVersion: row.keyVersion }, "credential cannot be decrypted");
        throw unreadable(row.id, err);
      }
      throw err;
    }
  }

  /** Audits an answered get, failing closed: the answer leaves only once this resolves. */
  async function handedOut(caller: Caller, input: GetInput): Promise<void> {
    await audit.record(record(caller, "get", { ...getAudit(input), result: "OK" }));
    log.debug({ credentialId: input.id, principal: caller.principal.id, jobId: input.jobId }, "credential handed out (sealed)");
  }

  async function get(caller: Caller, input: GetInput): Promise<SealedCredential> {
    checkGet(input);
    let result: SealedCredential;
    try {
      const { info: credential, plaintext } = await openFor(caller, input);
      try {
        result = { credential, sealed: channel.seal({ credentialId: input.id, accountId: input.accountId }, plaintext) };
      } finally {
        plaintext.fill(0);
      }
    } catch (err) {
      return failed(caller, "get", getAudit(input), err);
    }
    await handedOut(caller, input);
    return result;
  }

  async function batchGet(caller: Caller, inputs: readonly BatchGetInput[]): Promise<BatchGetResult> {
    const v = new Violations();
    if (inputs.length === 0 || inputs.length > GET_BATCH_MAX) v.add("items", `1 to ${GET_BATCH_MAX} requests, not ${inputs.length}`);
    inputs.forEach((input, i) => {
      if (input.traceparent && !TRACEPARENT.test(input.traceparent)) v.add(`items[${i}].traceparent`, "a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>, lowercase), or empty");
    });
    v.throwIfAny();
    const callers = inputs.map((input): Caller => ({ principal: caller.principal, traceId: input.traceparent ? input.traceparent.slice(3, 35) : caller.traceId }));
    // Each input on its own, as `get`: malformed ones refused unaudited, the rest read (one SELECT for all, made in one
    // turn) and opened, then every outcome audited (one audit batch).
    const opened = await Promise.allSettled(
      inputs.map(async (input, i) => {
        checkGet(input);
        return openFor(callers[i] as Caller, input).catch((err: unknown) => failed(callers[i] as Caller, "get", getAudit(input), err));
      }),
    );
    // One seal for all the fields: one AES-GCM encryption per batch, not per credential.
    const parts = opened.map((o) => (o.status === "fulfilled" ? o.value.plaintext : null));
    let sealed: ChannelSealed | undefined;
    if (parts.some((p) => p !== null)) {
      const all = Buffer.concat([Buffer.from("["), ...parts.flatMap((p, i) => [...(i > 0 ? [Buffer.from(",")] : []), p ?? Buffer.from("null")]), Buffer.from("]")]);
      try {
        sealed = channel.seal({ items: inputs.map((input) => ({ credentialId: input.id, accountId: input.accountId })) }, all);
      } finally {
        all.fill(0);
        for (const p of parts) p?.fill(0);
      }
    }
    const audited = await Promise.allSettled(opened.map((o, i) => (o.status === "fulfilled" ? handedOut(callers[i] as Caller, inputs[i] as GetInput) : undefined)));
    // Fail closed: fields whose record could not be written must not leave, sealed or not — and they share the seal,
    // so then no answered input gets its fields (their records may stand: a record of a refusal, never the reverse).
    const unaudited = audited.find((a): a is PromiseRejectedResult => a.status === "rejected");
    const results = opened.map((o, i): PromiseSettledResult<CredentialInfo> => {
      if (o.status === "rejected") return o;
      if (unaudited) return { status: "rejected", reason: audited[i]?.status === "rejected" ? audited[i].reason : unaudited.reason };
      return { status: "fulfilled", value: o.value.info };
    });
    return { results, sealed: unaudited ? undefined : sealed };
  }

  return {
    async store(caller, input) {
      const v = new Violations();
      v.accountId("account_id", input.accountId);
      v.type("type", input.type);
      v.secretFields("fields", input.fields);
      v.labels("labels", input.labels);
      v.jobId("job_id", input.jobId);
      v.throwIfAny();
      const id = newId();
      const plaintext = Buffer.from(JSON.stringify(input.fields), "utf8");
      try {
        return await repo.inTransaction(pool, async (tx) => {
          const now = deps.now();
          const { master, rotatedFrom } = await reserveEncryptions(tx, masterKeys, 1, limits, log, now);
          if (rotatedFrom !== undefined) await audit.recordInTransaction(tx, record(caller, "rotate", { result: "OK", detail: `automatic: version ${rotatedFrom} reached its rotation point; now ${master.version}` }));
          const sealed = sealRecord(master, context({ id, ...input }), plaintext);
          const row = await repo.insertCredential(tx, { id, accountId: input.accountId, type: input.type, labels: input.labels, ...sealed, createdBy: caller.principal.id, now });
          await audit.recordInTransaction(tx, record(caller, "store", { credentialId: id, accountId: input.accountId, jobId: input.jobId, result: "OK", detail: `type ${input.type}; key version ${master.version}` }));
          log.info({ credentialId: id, accountId: input.accountId, type: input.type, keyVersion: master.version, principal: caller.principal.id }, "credential stored");
          return info(row);
        });
      } catch (err) {
        return failed(caller, "store", { credentialId: id, accountId: input.accountId, jobId: input.jobId }, err);
      } finally {
        plaintext.fill(0);
      }
    },

    get,

    batchGet,

    async list(caller, input) {
      const v = new Violations();
      v.accountId("account_id", input.accountId);
      if (input.pageSize < 0 || input.pageSize > 500) v.add("page_size", "0 (default 50) to 500");
      const afterId = input.pageToken ? Buffer.from(input.pageToken, "base64url").toString("utf8") : "";
      if (input.pageToken && !/^[0-9A-HJKMNP-TV-Z]{26}$/.test(afterId)) v.add("page_token", "not a token from a previous response");
      v.throwIfAny();
      const size = input.pageSize || 50;
      const rows = await repo.listCredentials(pool, input.accountId, afterId, size + 1);
      const page = rows.slice(0, size);
      await audit.record(record(caller, "list", { accountId: input.accountId, result: "OK", detail: `${page.length} credential(s)` }));
      const last = page[page.length - 1];
      return { credentials: page.map(info), nextPageToken: rows.length > size && last ? Buffer.from(last.id).toString("base64url") : "" };
    },

    async delete(caller, input) {
      const v = new Violations();
      v.credentialId("id", input.id);
      v.jobId("job_id", input.jobId);
      v.throwIfAny();
      try {
        await repo.inTransaction(pool, async (tx) => {
          const row = await repo.findCredential(tx, input.id);
          if (!row) throw new NotFoundError("credential", input.id);
          const shredded = await repo.shredCredential(tx, input.id, deps.now());
          await audit.recordInTransaction(tx, record(caller, "delete", { credentialId: input.id, accountId: row.accountId, jobId: input.jobId, result: "OK", detail: shredded ? "data key destroyed" : "already deleted" }));
          if (shredded) log.info({ credentialId: input.id, principal: caller.principal.id }, "credential deleted: data key destroyed");
        });
      } catch (err) {
        return failed(caller, "delete", { credentialId: input.id, jobId: input.jobId }, err);
      }
    },

    async rotate(caller) {
      try {
        return await repo.inTransaction(pool, async (tx) => {
          const { from, to } = await rotateToNewest(tx, masterKeys, deps.now());
          await audit.recordInTransaction(tx, record(caller, "rotate", { result: "OK", detail: from === to ? `version ${to} already current` : `version ${from ?? "none"} → ${to}` }));
          if (from !== to) log.info({ from, to }, "master key rotated");
          return { currentVersion: to };
        });
      } catch (err) {
        return failed(caller, "rotate", {}, err);
      }
    },

    async rewrap(caller, input) {
      const v = new Violations();
      if (input.limit < 0) v.add("limit", "0 (all) or more");
      v.throwIfAny();
      let rewrapped = 0;
      let failures = 0;
      let afterId = "";
      let current = 0;
      const budget = input.limit > 0 ? input.limit : Number.POSITIVE_INFINITY;
      try {
        for (;;) {
          const take = Math.min(REWRAP_BATCH, budget - rewrapped - failures);
          if (take <= 0) break;
          const done = await repo.inTransaction(pool, async (tx) => {
            // Reserves a whole batch up front: the count may run ahead of the wraps made, never behind.
            const { master } = await reserveEncryptions(tx, masterKeys, take, limits, log, deps.now());
            current = master.version;
            const rows = await repo.credentialsToRewrap(tx, master.version, take, afterId);
            for (const row of rows) {
              afterId = row.id;
              if (!row.wrappedKey || !row.ciphertext) continue;
              try {
                const moved = rewrapRecord(masterKeys.lookup, master, context(row), { keyVersion: row.keyVersion, wrappedKey: row.wrappedKey, ciphertext: row.ciphertext });
                if (await repo.replaceWrappedKey(tx, row.id, row.keyVersion, moved, deps.now())) rewrapped++;
              } catch (err) {
                if (!(err instanceof EnvelopeError)) throw err;
                failures++;
                log.error({ credentialId: row.id, failure: err.failure, keyVersion: row.keyVersion }, "re-wrap: credential cannot be unwrapped; left as it is");
              }
            }
            return rows.length < take;
          });
          if (done) break;
        }
        const remaining = await repo.countCredentialsNotUnder(pool, current);
        await audit.record(record(caller, "rewrap", { result: "OK", detail: `rewrapped ${rewrapped}, failed ${failures}, remaining ${remaining}, to version ${current}` }));
        return { rewrapped, remaining, failed: failures, currentVersion: current };
      } catch (err) {
        return failed(caller, "rewrap", { detail: `rewrapped ${rewrapped} before the failure` }, err);
      }
    },
  };
}
