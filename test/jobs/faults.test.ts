// The dispatcher killed between commit and publish, with real processes: a dispatcher started with the test-only
// knob faults.crashAfterJobCommit SIGKILLs itself right after RunDiagnosticJob's transaction commits, before anything
// is published; the caller sees the connection drop. A monitor process's outbox poll (or its reconciler) publishes
// the committed job, a worker process runs it: SUCCEEDED with exactly one effect row. A new dispatcher then shows the
// caller the job, and the caller's retry with the same idempotency key returns that job instead of a second one.
// (A worker process killed with SIGKILL mid-job is test/jobs/monitor.test.ts "a worker process killed with SIGKILL".)
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.js";
import { createDispatcherClients, DispatcherError, type DispatcherClients } from "../../src/client/index.js";
import { DiagnosticOutcome, JobState } from "../../src/gen/proto/dispatcher/v1/jobs.js";
import { createTestApiKey, createTestEnv, killStrayDispatchers, spawnDispatcher, startDispatcher, type TestEnv } from "../support/process.js";
import { openJobsDb, SMALL_POOLS, streamMessages, type JobsDb } from "./faults-support.js";
import { until } from "../support/poll.js";

describe("faults.crashAfterJobCommit", () => {
  it("is off by default, read from DISPATCHER_FAULTS_CRASH_AFTER_JOB_COMMIT, and refused in production mode", () => {
    expect(loadConfig({}, "").faults.crashAfterJobCommit).toBe(false);
    expect(loadConfig({ DISPATCHER_FAULTS_CRASH_AFTER_JOB_COMMIT: "true" }, "").faults.crashAfterJobCommit).toBe(true);
    const production = () => loadConfig({ DISPATCHER_MODE: "production", DISPATCHER_FAULTS_CRASH_AFTER_JOB_COMMIT: "1" }, "");
    expect(production).toThrow(ConfigError);
    expect(production).toThrow(/faults\.crashAfterJobCommit: .*tests only/);
    expect(loadConfig({ DISPATCHER_MODE: "production", DISPATCHER_FAULTS_CRASH_AFTER_JOB_COMMIT: "false" }, "").faults.crashAfterJobCommit).toBe(false);
  });
});

describe("the dispatcher killed between commit and publish", () => {
  let env: TestEnv;
  let h: JobsDb;
  let secret: string;
  const clients: DispatcherClients[] = [];
  const connect = (): DispatcherClients => {
    const c = createDispatcherClients({ address: env.address, token: secret, retry: false });
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    env = await createTestEnv({
      label: "fcrash",
      migrate: true,
      env: { ...SMALL_POOLS, DISPATCHER_LOGGING_LEVEL: "info", DISPATCHER_JOBS_RECONCILE_INTERVAL_MS: "250", DISPATCHER_JOBS_REPUBLISH_AFTER_MS: "3000" },
    });
    h = openJobsDb(env);
    secret = (await createTestApiKey(env.urls.provisioning, { role: "admin" })).secret;
  }, 60_000);

  afterAll(async () => {
    for (const c of clients) c.close();
    await killStrayDispatchers();
    await h?.close();
    await env?.cleanup();
  });

  it("the caller's connection drops; the committed job is published by the monitor, runs once, and the caller finds it", async () => {
    const crashing = await startDispatcher(env, ["serve", "--role", "dispatcher"], { env: env.with({ DISPATCHER_FAULTS_CRASH_AFTER_JOB_COMMIT: "true" }), timeoutMs: 40_000 });
    const request = { outcome: DiagnosticOutcome.DIAGNOSTIC_OUTCOME_SUCCEED, sleep: { seconds: "0", nanos: 300_000_000 }, note: "survives a crash", idempotencyKey: "crash-test-1" };
    const failed = await connect().jobs.runDiagnosticJob(request).then(
      () => null,
      (err: unknown) => err,
    );
    expect(failed, "the call must fail: the dispatcher died before replying").toBeInstanceOf(DispatcherError);
    expect((failed as DispatcherError).codeName).toBe("UNAVAILABLE");
    expect(await crashing.exited).toEqual({ code: null, signal: "SIGKILL" });
    const id = /faults\.crashAfterJobCommit: job (\S+) committed/.exec(crashing.stderr)?.[1] ?? "";
    expect(id, crashing.output()).toMatch(/^[0-9A-Z]{26}$/);

    // Committed, and nothing published: the job is QUEUED with one unpublished outbox row, and the stream is empty.
    expect(await h.job(id)).toMatchObject({ state: "QUEUED", attempt: 0, publishCount: 1, publishedAt: null });
    expect(await h.outbox(id)).toEqual([{ msgId: `${id}:1` }]);
    expect(await streamMessages(env)).toBe(0);
    expect(await h.events(id)).toEqual(["created"]);

    // A monitor and a worker, no dispatcher: the monitor's relay poll (or reconciler) publishes, the worker runs it.
    const monitor = spawnDispatcher(["serve", "--role", "monitor"], env.env);
    const worker = spawnDispatcher(["serve", "--role", "worker"], env.env);
    await Promise.all([monitor.waitForOutput(/monitor running/, 40_000), worker.waitForOutput(/worker consuming jobs/, 40_000)]);
    const row = await h.waitForState(id, ["SUCCEEDED", "FAILED", "CANCELLED"], 30_000);
    expect(row).toMatchObject({ state: "SUCCEEDED", attempt: 1, result: { note: "survives a crash", attempt: 1 } });
    expect(await h.effects(id)).toEqual([1]);
    const history = (await h.events(id)).filter((t) => t !== "progress" && t !== "republished");
    expect(history).toEqual(["created", "started", "succeeded"]);
    // The row leaves in the poll's transaction; one that lost a deadlock after publishing leaves with the next poll.
    await until(async () => (await h.outbox(id)).length === 0, 10_000, "the outbox row removed once published");

    // The caller, back on a dispatcher: the job is listed and done; retrying with the same key returns it.
    await startDispatcher(env, ["serve", "--role", "dispatcher"], { timeoutMs: 40_000 });
    const c = connect();
    const listed = await c.jobs.listJobs({ kind: "diagnostic", pageSize: 10 });
    expect(listed.jobs.map((j) => j.id)).toEqual([id]);
    expect((await c.jobs.getJob({ id })).job).toMatchObject({ id, state: JobState.JOB_STATE_SUCCEEDED, idempotencyKey: "crash-test-1" });
    const again = await c.jobs.runDiagnosticJob(request);
    expect(again.job).toMatchObject({ id, state: JobState.JOB_STATE_SUCCEEDED });
    expect((await c.jobs.listJobs({ kind: "diagnostic", pageSize: 10 })).jobs).toHaveLength(1);
    // Still one effect, a while later (no second run from the crash's leftovers).
    await until(async () => (await streamMessages(env)) === 0, 5_000, "the stream to drain");
    expect(await h.effects(id)).toEqual([1]);
  }, 90_000);
});
