// The monitor role on the real MariaDB and NATS, with a worker: completion by observation (pending → checks →
// SUCCEEDED, or the deadline → FAILED, or a cancellation), the reconciler republishing a job whose message was lost
// and failing a queued job past its deadline, and a worker process killed with SIGKILL mid-job whose job another
// worker completes after the reconciler requeued it — with exactly one effect row.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startMonitorRole } from "../../src/app/monitor-role.js";
import type { RunningRole } from "../../src/app/roles.js";
import { MONITOR_OWNER } from "../../src/jobs/execution.js";
import { startWorker, type RunningWorker } from "../../src/jobs/worker.js";
import { createTestEnv, killStrayDispatchers, spawnDispatcher, type TestEnv } from "../support/process.js";
import { diagnostic, openExecHarness, types, type ExecHarness } from "./exec-support.js";
import { until } from "../support/poll.js";

/** Fast loops, so that tests take seconds. */
function speedUp(h: ExecHarness): void {
  h.config.jobs.checkPollMs = 50;
  h.config.jobs.reconcileIntervalMs = 200;
  h.config.jobs.republishAfterMs = 1_000;
}

describe("monitor role", () => {
  let h: ExecHarness;
  let worker: RunningWorker;
  let monitor: RunningRole;
  beforeAll(async () => {
    h = await openExecHarness("monitor");
    speedUp(h);
    worker = await startWorker({ resources: h.resources("w"), catalog: h.catalog });
    monitor = await startMonitorRole(h.resources("m"));
  });
  afterAll(async () => {
    await monitor?.stop(1_000);
    await worker?.stop(1_000);
    await h?.close();
  });

  it("completes a pending job by observation: checks until the kind says done, one pending event, one effect", async () => {
    const id = await h.insertJob({ payload: diagnostic({ outcome: "pending", pendingChecks: 3 }) });
    await h.publish(id);
    const row = await h.waitForState(id, ["SUCCEEDED", "FAILED"]);
    expect(row).toMatchObject({ state: "SUCCEEDED", attempt: 1, checks: 3, leaseOwner: null, nextCheckAt: null, result: { checks: 3, attempt: 1 } });
    expect(await h.effects(id)).toEqual([{ attempt: 1 }]);
    const events = await h.events(id);
    expect(types(events)).toEqual(["created", "started", "pending", "succeeded"]);
    expect(events[3]!.actor).toBe(MONITOR_OWNER);
  });

  it("fails a pending job whose deadline passes, with the reason", async () => {
    const id = await h.insertJob({ payload: diagnostic({ outcome: "pending", pendingChecks: 1_000_000 }), deadlineMs: 2_000 });
    await h.publish(id);
    const row = await h.waitForState(id, ["SUCCEEDED", "FAILED"]);
    expect(row.state).toBe("FAILED");
    expect(row.errorCode).toBe("DEADLINE_EXCEEDED");
    expect(row.errorMessage).toMatch(/^timed out waiting for diagnostic to complete \(\d+ checks\)$/);
    // Checked again and again until the deadline (checks come every ~100 ms; a busy machine manages fewer).
    expect(row.checks).toBeGreaterThanOrEqual(2);
    expect(types(await h.events(id))).toEqual(["created", "started", "pending", "timed_out"]);
    expect(await h.effects(id)).toEqual([]);
  });

  it("cancels a pending job whose cancellation was requested", async () => {
    const id = await h.insertJob({ payload: diagnostic({ outcome: "pending", pendingChecks: 1_000_000 }) });
    await h.publish(id);
    await until(async () => (await h.job(id)).leaseOwner === MONITOR_OWNER, 5_000, "the job to be pending");
    await h.db.$executeRaw`UPDATE jobs SET cancel_requested = 1 WHERE id = ${id}`;
    expect(await h.waitForState(id, ["CANCELLED", "SUCCEEDED", "FAILED"], 5_000)).toMatchObject({ state: "CANCELLED" });
    expect(types(await h.events(id)).at(-1)).toBe("cancelled");
  });

  it("republishes a queued job whose message was lost; the worker then completes it once", async () => {
    const id = await h.insertJob({ payload: diagnostic() });
    // Never published (as if the message was lost), and "published" long ago.
    await h.db.$executeRaw`UPDATE jobs SET published_at = NOW(3) - INTERVAL 60 SECOND WHERE id = ${id}`;
    const row = await h.waitForState(id, ["SUCCEEDED", "FAILED"], 10_000);
    expect(row).toMatchObject({ state: "SUCCEEDED", attempt: 1, publishCount: 2 });
    expect(types(await h.events(id))).toEqual(["created", "republished", "started", "succeeded"]);
    expect(await h.effects(id)).toEqual([{ attempt: 1 }]);
  });

  it("fails a queued job past its deadline", async () => {
    const id = await h.insertJob({ payload: diagnostic(), deadlineMs: 300 });
    await h.db.$executeRaw`UPDATE jobs SET published_at = NOW(3) WHERE id = ${id}`;
    const row = await h.waitForState(id, ["FAILED", "SUCCEEDED"], 5_000);
    expect(row).toMatchObject({ state: "FAILED", attempt: 0, errorCode: "DEADLINE_EXCEEDED", errorMessage: "timed out before diagnostic could start" });
    expect(types(await h.events(id))).toEqual(["created", "timed_out"]);
  });
});

describe("a worker process killed with SIGKILL mid-job", () => {
  let env: TestEnv;
  let h: ExecHarness;
  beforeAll(async () => {
    env = await createTestEnv({ label: "wkill", migrate: true, env: { DISPATCHER_JOBS_LEASE_MS: "1500", DISPATCHER_LOGGING_LEVEL: "info" } });
    h = await openExecHarness("wkill", { env, leaseMs: 1_500 });
    speedUp(h);
  });
  afterAll(async () => {
    await killStrayDispatchers();
    await h?.close();
    await env?.cleanup();
  });

  it("the reconciler requeues the job when the lease expires and another worker completes it: one effect row", async () => {
    const child = spawnDispatcher(["serve", "--role", "worker"], env.env);
    await child.waitForOutput(/worker consuming jobs/, 30_000);
    const id = await h.insertJob({ payload: diagnostic({ sleepMs: 3_000 }) });
    await h.publish(id);
    const running = await h.waitForState(id, ["RUNNING"], 10_000);
    expect(running.leaseOwner).toMatch(/^worker-/);
    await until(async () => (await h.job(id)).progressPercent > 0, 5_000, "the handler to make progress");
    await child.kill9();

    const monitor = await startMonitorRole(h.resources("m"));
    const survivor = await startWorker({ resources: h.resources("survivor"), catalog: h.catalog });
    try {
      const row = await h.waitForState(id, ["SUCCEEDED", "FAILED"], 20_000);
      expect(row).toMatchObject({ state: "SUCCEEDED", attempt: 2, publishCount: 2 });
      expect(await h.effects(id)).toEqual([{ attempt: 2 }]);
      const events = (await h.events(id)).filter((e) => e.type !== "progress");
      expect(types(events)).toEqual(["created", "started", "lease_expired", "started", "succeeded"]);
      expect(events[1]!.actor).toBe(running.leaseOwner);
      expect(events[2]!.actor).toBe("monitor");
      expect(events[3]!.actor).toBe(survivor.owner);
    } finally {
      await survivor.stop(1_000);
      await monitor.stop(1_000);
    }
  });
});
