// The traces service without a store (spans go to a tracing backend) and for a job that was never traced.
import { describe, expect, it } from "vitest";
import { NotFoundError } from "../../src/errors.js";
import type { Principal } from "../../src/iam/principal.js";
import type { Job } from "../../src/jobs/model.js";
import { SpanStore } from "../../src/telemetry/span-store.js";
import { createTraceService } from "../../src/traces/service.js";

const principal: Principal = { id: "u1", kind: "user", roles: ["reader"], displayName: "u1" };
const jobs = (traceId: string) => ({
  getJob: async (_p: Readonly<Principal>, id: string): Promise<Job> => {
    if (id !== "J1") throw new NotFoundError("job", id);
    return { id, traceId } as Job;
  },
});

describe("the traces service", () => {
  it("says the trace is kept elsewhere, with its link, when the process keeps no spans", async () => {
    const traces = createTraceService({ jobs: jobs("abc"), store: undefined, traceUiUrl: "http://jaeger:16686/trace/{traceId}" });
    expect(await traces.getJobTrace(principal, "J1")).toEqual({ traceId: "abc", storage: "external", spans: [], truncated: false, externalUrl: "http://jaeger:16686/trace/abc" });
  });

  it("answers an untraced job with no spans and no link", async () => {
    const traces = createTraceService({ jobs: jobs(""), store: new SpanStore({ maxSpans: 10, maxAgeMs: 1000 }), traceUiUrl: "http://jaeger:16686/trace/{traceId}" });
    expect(await traces.getJobTrace(principal, "J1")).toEqual({ traceId: "", storage: "embedded", spans: [], truncated: false, externalUrl: "" });
  });

  it("passes the job service's NOT_FOUND on", async () => {
    const traces = createTraceService({ jobs: jobs("abc"), store: undefined, traceUiUrl: "" });
    await expect(traces.getJobTrace(principal, "J2")).rejects.toBeInstanceOf(NotFoundError);
  });
});
