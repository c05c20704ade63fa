// What the server job kinds share: the payload, loading the server, reaching it on its cloud, recording what was
// seen, and how often completion checks look again.
import { z } from "zod";
import type { CloudDriver, DriverCallOptions, DriverTarget, ServerObservation, ServerRef } from "../../clouds/driver.js";
import { withCloud } from "../../clouds/access.js";
import type { JobContext, JobKind } from "../../jobs/catalog.js";
import { PermanentJobError } from "../../jobs/errors.js";
import { recordObservation, type Applied, type Observation } from "../inventory.js";
import type { Server } from "../model.js";
import { findServer } from "../repository.js";

export const serverPayload = z.object({ serverId: z.string().min(1).max(64) });
export type ServerPayload = z.output<typeof serverPayload>;

/** Retries of a handler: the cloud call is idempotent (client token, or the provider's own semantics). */
export const LIFECYCLE_RETRY: Pick<JobKind, "maxAttempts" | "backoffMs" | "ackWaitMs"> = { maxAttempts: 6, backoffMs: [1_000, 5_000, 15_000, 30_000], ackWaitMs: 90_000 };

/** Delay before completion check n+1: quick at first (a local server runs in well under a second), then every 5 s. */
export function checkAfter(checks: number): number {
  return Math.min(200 * 2 ** Math.min(checks, 5), 5_000);
}

export async function loadServer(ctx: JobContext, serverId: string): Promise<Server> {
  const server = await findServer(ctx.sql, serverId);
  if (!server) throw new PermanentJobError(`server ${serverId} does not exist`, "NOT_FOUND", { server: serverId });
  return server;
}

export function refOf(server: Server): ServerRef {
  if (!server.providerId) throw new PermanentJobError(`server ${server.id} has no provider id: it never reached its cloud`, "FAILED_PRECONDITION", { server: server.id });
  return { regionId: server.regionId, providerId: server.providerId };
}

/** Runs `fn` against the server's cloud (credentials from KM for this call only). */
export function onCloud<T>(ctx: JobContext, server: Server, fn: (driver: CloudDriver, target: DriverTarget, call: DriverCallOptions) => Promise<T>): Promise<T> {
  return withCloud(ctx, server.accountId, { purpose: ctx.kind }, fn);
}

/** The server as its provider reports it now; null when the provider does not know it (any more). */
export function observe(ctx: JobContext, server: Server): Promise<ServerObservation | null> {
  const ref = refOf(server);
  return onCloud(ctx, server, (driver, target, call) => driver.getServer(target, ref, call));
}

/** Records an observation at once, in a transaction of its own (not at completion): a retry must build on it. */
export async function recordNow(ctx: JobContext, serverId: string, observation: Observation): Promise<Applied | null> {
  return ctx.sql.transaction((tx) => recordObservation(tx, serverId, observation, { jobId: ctx.jobId }));
}

/** An observation of a server its provider no longer knows. */
export const GONE: Observation = { state: "TERMINATED", addresses: { private: [], public: [] } };
