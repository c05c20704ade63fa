// Error mapping end to end: DomainErrors reach the client with their code and google.rpc details; anything else is
// INTERNAL "internal error" with nothing of the cause, which goes to the service log instead.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Metadata, status } from "@grpc/grpc-js";
import { createDispatcherClients, DispatcherError, type DispatcherClients } from "../../src/client/index.js";
import { FailedPreconditionError, InvalidArgumentError } from "../../src/errors.js";
import { decodeStatusDetails, STATUS_DETAILS_KEY, toRpcStatus } from "../../src/rpc/status.js";
import { Violations } from "../../src/rpc/validate.js";
import { startTestServer, testJobService, type TestServer } from "./fixtures.js";
import { createSystemService } from "../../src/system/service.js";
import { systemHandlers } from "../../src/system/handlers.js";

const SECRET_CAUSE = "db password hunter2 at 10.1.2.3 refused";

async function failure(p: Promise<unknown>): Promise<DispatcherError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DispatcherError);
  return err as DispatcherError;
}

describe("status mapping (unit)", () => {
  it("round-trips a DomainError through the details trailer", () => {
    const s = toRpcStatus(new FailedPreconditionError("quota exceeded", "QUOTA_EXCEEDED", [{ subject: "account:a1", description: "5 of 5 servers" }], { accountId: "a1" }));
    expect(s.code).toBe(status.FAILED_PRECONDITION);
    const d = decodeStatusDetails(s.metadata);
    expect(d).toMatchObject({ code: status.FAILED_PRECONDITION, codeName: "FAILED_PRECONDITION", message: "quota exceeded" });
    expect(d?.errorInfo).toEqual({ reason: "QUOTA_EXCEEDED", domain: "dispatcher.v1", metadata: { accountId: "a1" } });
    expect(d?.quotaViolations).toEqual([{ subject: "account:a1", description: "5 of 5 servers" }]);
  });

  it("maps anything that is not a DomainError to INTERNAL without details", () => {
    const s = toRpcStatus(new Error(SECRET_CAUSE));
    expect(s).toMatchObject({ code: status.INTERNAL, details: "internal error" });
    expect(s.metadata.get(STATUS_DETAILS_KEY)).toEqual([]);
    expect(toRpcStatus("a string").code).toBe(status.INTERNAL);
  });

  it("decodes nothing from metadata without the trailer or with garbage in it", () => {
    expect(decodeStatusDetails(new Metadata())).toBeNull();
    const m = new Metadata();
    m.set(STATUS_DETAILS_KEY, Buffer.from([0xff, 0xff, 0xff]));
    expect(decodeStatusDetails(m)).toBeNull();
  });
});

describe("error mapping over a real server", () => {
  let t: TestServer;
  let c: DispatcherClients;

  beforeAll(async () => {
    const jobs = testJobService({
      listJobs: async (req) => {
        const v = new Violations();
        v.pageSize("page_size", req.pageSize);
        v.pageToken("page_token", req.pageToken, { kind: req.kind });
        v.string("kind", req.kind, { max: 8 });
        v.check();
        return { jobs: [], nextPageToken: "" };
      },
      runDiagnosticJob: async () => {
        throw new FailedPreconditionError("diagnostic quota exceeded", "QUOTA_EXCEEDED", [{ subject: "principal:u-admin", description: "3 diagnostics per minute" }]);
      },
      cancelJob: async () => {
        throw new Error(SECRET_CAUSE);
      },
      retryJob: async () => {
        throw new InvalidArgumentError([]);
      },
    });
    t = await startTestServer({ services: [systemHandlers(createSystemService({ roles: ["dispatcher"] })), jobs] });
    c = createDispatcherClients({ address: t.address, token: "admin-token", retry: false });
  });

  afterAll(async () => {
    c.close();
    await t.stop();
  });

  it("NotFoundError → NOT_FOUND with ErrorInfo", async () => {
    const err = await failure(c.jobs.getJob({ id: "j-404" }));
    expect(err.code).toBe(status.NOT_FOUND);
    expect(err.codeName).toBe("NOT_FOUND");
    expect(err.message).toBe('job "j-404" not found');
    expect(err.errorInfo).toEqual({ reason: "JOB_NOT_FOUND", domain: "dispatcher.v1", metadata: { resourceType: "job", id: "j-404" } });
    expect(err.fieldViolations).toEqual([]);
  });

  it("InvalidArgumentError → INVALID_ARGUMENT with every field violation in BadRequest", async () => {
    const err = await failure(c.jobs.listJobs({ pageSize: -1, pageToken: "not-a-token", kind: "far-too-long-kind" }));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.errorInfo?.reason).toBe("INVALID_ARGUMENT");
    expect(err.fieldViolations.map((v) => v.field)).toEqual(["page_size", "page_token", "kind"]);
    expect(err.fieldViolations[2]?.description).toBe("must be at most 8 characters");
  });

  it("an InvalidArgumentError without violations still carries ErrorInfo and no BadRequest", async () => {
    const err = await failure(c.jobs.retryJob({ id: "j1" }));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.errorInfo?.domain).toBe("dispatcher.v1");
    expect(err.fieldViolations).toEqual([]);
  });

  it("FailedPreconditionError with quota violations → FAILED_PRECONDITION with QuotaFailure", async () => {
    const err = await failure(c.jobs.runDiagnosticJob({}));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.errorInfo?.reason).toBe("QUOTA_EXCEEDED");
    expect(err.quotaViolations).toEqual([{ subject: "principal:u-admin", description: "3 diagnostics per minute" }]);
  });

  it("an unexpected throw → INTERNAL 'internal error'; the cause is logged, never sent", async () => {
    const err = await failure(c.jobs.cancelJob({ id: "j1" }));
    expect(err.code).toBe(status.INTERNAL);
    expect(err.message).toBe("internal error");
    expect(err.errorInfo).toBeUndefined();
    const wire = JSON.stringify({ message: err.message, trailers: err.metadata?.toJSON() });
    expect(wire).not.toContain("hunter2");
    expect(wire).not.toContain("10.1.2.3");
    const logged = t.logLines.find((l) => l.method === "/dispatcher.v1.JobService/CancelJob" && l.level === "error");
    expect(JSON.stringify(logged)).toContain(SECRET_CAUSE);
  });

  it("writes one request-log line per RPC with method, principal and code name", async () => {
    const before = t.requests.length;
    await failure(c.jobs.getJob({ id: "x" }));
    await c.jobs.listJobs({ kind: "noop" });
    const lines = t.requests.slice(before);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({ method: "/dispatcher.v1.JobService/GetJob", principal: "u-admin", code: "NOT_FOUND" });
    expect(lines[1]).toMatchObject({ method: "/dispatcher.v1.JobService/ListJobs", principal: "u-admin", code: "OK" });
    expect(lines[0]?.peer).toMatch(/127\.0\.0\.1/);
    expect(lines[0]?.durationMs).toBeGreaterThanOrEqual(0);
  });
});
