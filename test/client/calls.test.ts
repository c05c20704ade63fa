// Unary calls through src/client/calls.ts against a real grpc-js server: with callerStack false grpc-js skips its
// per-call capture of the caller's stack (a hot path's saving), the default keeps it, and the global limit is restored.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client, credentials, status } from "@grpc/grpc-js";
import { unaryCall } from "../../src/client/calls.js";
import { DispatcherError } from "../../src/client/errors.js";
import { GetJobRequest, JobServiceService } from "../../src/gen/proto/dispatcher/v1/jobs.js";
import { startTestServer, testJobService, type TestServer } from "../rpc/fixtures.js";

describe("unaryCall and the caller's stack", () => {
  let t: TestServer;
  let client: Client;

  beforeAll(async () => {
    t = await startTestServer({ services: [testJobService()] });
    client = new Client(t.address, credentials.createInsecure());
  });

  afterAll(async () => {
    client.close();
    await t.stop();
  });

  /** A GetJob of a missing job (the test service answers NOT_FOUND), made from a function named in this file. */
  const missingJobFromHere = (callerStack?: boolean): Promise<unknown> =>
    unaryCall(client, JobServiceService.getJob, GetJobRequest.fromPartial({ id: "missing" }), { token: "reader-token", defaultDeadlineMs: 5_000, callerStack }).catch((e: unknown) => e);

  it("keeps grpc-js's caller frames by default and skips them with callerStack false; the call answers the same", async () => {
    const limit = Error.stackTraceLimit;
    const kept = await missingJobFromHere();
    const skipped = await missingJobFromHere(false);
    expect(Error.stackTraceLimit).toBe(limit);
    for (const err of [kept, skipped]) {
      expect(err).toBeInstanceOf(DispatcherError);
      expect((err as DispatcherError).code).toBe(status.NOT_FOUND);
    }
    expect(((kept as DispatcherError).cause as Error).stack).toContain("missingJobFromHere");
    expect(((skipped as DispatcherError).cause as Error).stack).not.toContain("missingJobFromHere");
  });
});
