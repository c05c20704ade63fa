// KM's domain: who calls, what a credential's metadata is, what each operation takes and answers, and the service's
// shape. Free of proto and database types; handlers map these to and from km.v1.
import type { Principal } from "../iam/principal.js";
import type { ChannelSealed } from "./channel.js";

/** Who asks and which trace the request belongs to (for the audit trail). */
export interface Caller {
  principal: Readonly<Principal>;
  traceId: string;
}

export interface CredentialInfo {
  id: string;
  accountId: string;
  type: string;
  labels: Record<string, string>;
  keyVersion: number;
  createTime: Date;
  updateTime: Date;
}

export interface StoreInput {
  accountId: string;
  type: string;
  fields: Record<string, string>;
  labels: Record<string, string>;
  jobId: string;
}

export interface GetInput {
  id: string;
  accountId: string;
  jobId: string;
  purpose: string;
}

/** One request of a batch: a get on behalf of the caller whose W3C traceparent it carries (empty: the call's own). */
export interface BatchGetInput extends GetInput {
  traceparent: string;
}

export interface SealedCredential {
  credential: CredentialInfo;
  sealed: ChannelSealed;
}

export interface BatchGetResult {
  results: PromiseSettledResult<CredentialInfo>[];
  /** Absent when no input was answered. */
  sealed: ChannelSealed | undefined;
}

export interface KmService {
  store(caller: Caller, input: StoreInput): Promise<CredentialInfo>;
  /** The credential's fields sealed for the channel; the plaintext never leaves this function. */
  get(caller: Caller, input: GetInput): Promise<SealedCredential>;
  /**
   * Up to GET_BATCH_MAX gets in one call, each checked, answered or refused, and audited on its own exactly as `get`;
   * the outcomes in the inputs' order, and the answered credentials' fields sealed together for the channel (an
   * entry per input, null where it failed). Only a malformed batch as a whole (its size, a traceparent) throws.
   */
  batchGet(caller: Caller, inputs: readonly BatchGetInput[]): Promise<BatchGetResult>;
  list(caller: Caller, input: { accountId: string; pageSize: number; pageToken: string }): Promise<{ credentials: CredentialInfo[]; nextPageToken: string }>;
  delete(caller: Caller, input: { id: string; jobId: string }): Promise<void>;
  rotate(caller: Caller): Promise<{ currentVersion: number }>;
  rewrap(caller: Caller, input: { limit: number }): Promise<{ rewrapped: number; remaining: number; failed: number; currentVersion: number }>;
}

/** Requests in one BatchGetCredentials call at most. */
export const GET_BATCH_MAX = 100;
