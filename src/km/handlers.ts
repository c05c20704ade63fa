// km.v1.KeyManagementService over gRPC: maps requests to the KM service and its answers to km.v1 messages.
import { KeyManagementServiceService as KM, type CredentialMetadata } from "../gen/proto/km/v1/km.js";
import { defineService, unary, type CallContext, type RpcService } from "../rpc/adapter.js";
import type { Caller, CredentialInfo, KmService } from "./service.js";

const caller = (ctx: CallContext): Caller => ({ principal: ctx.principal, traceId: ctx.traceId });

function metadata(c: CredentialInfo): CredentialMetadata {
  return { id: c.id, accountId: c.accountId, type: c.type, labels: c.labels, keyVersion: c.keyVersion, createTime: c.createTime, updateTime: c.updateTime };
}

export function kmHandlers(km: KmService): RpcService {
  return defineService(KM, {
    storeCredential: unary(KM.storeCredential, async (req, ctx) => ({
      credential: metadata(await km.store(caller(ctx), { accountId: req.accountId, type: req.type, fields: req.fields, labels: req.labels, jobId: req.jobId })),
    })),
    getCredential: unary(KM.getCredential, async (req, ctx) => {
      const { credential, sealed } = await km.get(caller(ctx), { id: req.id, accountId: req.accountId, jobId: req.jobId, purpose: req.purpose });
      return { credential: metadata(credential), sealedFields: { channelKeyVersion: sealed.channelKeyVersion, nonce: sealed.nonce, ciphertext: sealed.ciphertext, salt: sealed.salt } };
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
