// km.v1.KeyManagementService over gRPC: maps requests to the KM service and its answers to km.v1 messages.
import { DomainError } from "../errors.js";
import { KeyManagementServiceService as KM, type BatchGetCredentialsResult, type CredentialMetadata, type SealedFields } from "../gen/proto/km/v1/km.js";
import { defineService, unary, type CallContext, type RpcService } from "../rpc/adapter.js";
import { toStatusMessage } from "../rpc/status.js";
import { contextFromTraceparent } from "../telemetry/propagation.js";
import { withSpan } from "../telemetry/spans.js";
import type { ChannelSealed } from "./channel.js";
import type { Caller, CredentialInfo, KmService } from "./model.js";

const caller = (ctx: CallContext): Caller => ({ principal: ctx.principal, traceId: ctx.traceId });

function metadata(c: CredentialInfo): CredentialMetadata {
  return { id: c.id, accountId: c.accountId, type: c.type, labels: c.labels, keyVersion: c.keyVersion, createTime: c.createTime, updateTime: c.updateTime };
}

const sealedFields = (sealed: ChannelSealed): SealedFields => ({ channelKeyVersion: sealed.channelKeyVersion, nonce: sealed.nonce, ciphertext: sealed.ciphertext, salt: sealed.salt });

/** One item's outcome; an unexpected failure is INTERNAL "internal error" to the caller and its cause in the log. */
function batchResult(outcome: PromiseSettledResult<CredentialInfo>, ctx: CallContext): BatchGetCredentialsResult {
  if (outcome.status === "fulfilled") return { result: { $case: "credential", value: metadata(outcome.value) } };
  const status = toStatusMessage(outcome.reason);
  if (!(outcome.reason instanceof DomainError)) ctx.log.error({ err: outcome.reason }, "unexpected error in a batch item");
  return { result: { $case: "error", value: status } };
}

/** Span attributes of a batch's request: ids only. */
function requestAttributes(input: { id: string; accountId: string; jobId: string }, batchSize: number): Record<string, string | number> {
  return { "km.credential.id": input.id, "km.account.id": input.accountId, ...(input.jobId ? { "job.id": input.jobId } : {}), "km.batch.size": batchSize };
}

export function kmHandlers(km: KmService): RpcService {
  return defineService(KM, {
    storeCredential: unary(KM.storeCredential, async (req, ctx) => ({
      credential: metadata(await km.store(caller(ctx), { accountId: req.accountId, type: req.type, fields: req.fields, labels: req.labels, jobId: req.jobId })),
    })),
    getCredential: unary(KM.getCredential, async (req, ctx) => {
      const { credential, sealed } = await km.get(caller(ctx), { id: req.id, accountId: req.accountId, jobId: req.jobId, purpose: req.purpose });
      return { credential: metadata(credential), sealedFields: sealedFields(sealed) };
    }),
    batchGetCredentials: unary(KM.batchGetCredentials, async (req, ctx) => {
      const inputs = req.items.map(({ request: r, traceparent }) => ({ id: r?.id ?? "", accountId: r?.accountId ?? "", jobId: r?.jobId ?? "", purpose: r?.purpose ?? "", traceparent }));
      const batch = km.batchGet(caller(ctx), inputs);
      // Each request is traced in the trace of the caller it serves, as its own GetCredential call would be: a job's
      // trace keeps KM's part of it. The span lasts until the request's answer is ready.
      await Promise.all(
        inputs.map((input, i) =>
          withSpan("km.get", { parent: contextFromTraceparent(input.traceparent), attributes: requestAttributes(input, inputs.length) }, async () => {
            const outcome = (await batch).results[i];
            if (outcome?.status === "rejected") throw outcome.reason;
          }).catch(() => undefined),
        ),
      );
      const { results, sealed } = await batch;
      return { results: results.map((o) => batchResult(o, ctx)), sealedFields: sealed ? sealedFields(sealed) : undefined };
    }),
    listCredentials: unary(KM.listCredentials, async (req, ctx) => {
      const page = await km.list(caller(ctx), { accountId: req.accountId, pageSize: req.pageSize, pageToken: req.pageToken });
      return { credentials: page.credentials.map(metadata), nextPageToken: page.nextPageToken };
    }),
    deleteCredential: unary(KM.deleteCredential, async (req, ctx) => {
      await km.delete(caller(ctx), { id: req.id, jobId: req.jobId });
      return {};
    }),
    rotateMasterKey: unary(KM.rotateMasterKey, async (_req, ctx) => km.rotate(caller(ctx))),
    rewrapCredentials: unary(KM.rewrapCredentials, async (req, ctx) => km.rewrap(caller(ctx), { limit: req.limit })),
  });
}
