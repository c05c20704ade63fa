// The server job kinds on a worker and the monitor's completion checks, against an in-memory cloud: a launch succeeds
// only once the server is observed RUNNING (provider id recorded at once, client token = server id), stop/start/
// reboot/terminate succeed on the observed target state (a reboot on a new boot), a refused launch leaves the server
// TERMINATED with the reason, and servers.sync adopts, updates and retires servers through the one inventory function.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DriverError } from "../../src/clouds/driver.js";
import { ServerState } from "../../src/gen/proto/dispatcher/v1/servers.js";
import { SERVERS_SYNC_KIND } from "../../src/servers/kinds/index.js";
import { findServer } from "../../src/servers/repository.js";

import { seedAccount, seedBudgetCode, startServersFixture, type ServersFixture } from "./support.js";
import { until } from "../support/poll.js";

let f: ServersFixture;
let account: string;

const launch = (over: Record<string, string> = {}) => ({ accountId: account, regionId: "r1", dataCenter: "", productId: "small", imageId: "img-1", name: "", budgetCode: "", idempotencyKey: "", ...over });

async function finished(jobId: string) {
  return f.h.waitForState(jobId, ["SUCCEEDED", "FAILED", "CANCELLED"], 20_000);
}

async function eventTypes(serverId: string): Promise<string[]> {
  const { events } = await f.client(f.users.admin).servers.listServerEvents({ id: serverId, pageSize: 1000 });
  return events.map((e) => e.type);
}

beforeAll(async () => {
  f = await startServersFixture("srv_life");
  await seedBudgetCode(f, "OPS", { hard: 10_000_000n }, [f.users.admin, f.users.operator]);
  account = await seedAccount(f, { defaultBudgetCode: "OPS" });
});
afterAll(async () => {
  await f?.close();
});

describe("server lifecycle jobs", () => {
  it("launches: provider id recorded by the worker, SUCCEEDED only once the monitor sees it RUNNING", async () => {
    f.cloud.steps = 3;
    const c = f.client(f.users.operator);
    const { job, server } = await c.servers.launchServer(launch({ name: "web" }));
    // The worker records the provider id before the server runs.
    const pending = await until(async () => {
      const s = await findServer(f.h.sql, server!.id);
      return s?.providerId ? s : null;
    }, 10_000, "the provider id");
    expect(pending.state).toBe("PENDING");
    expect((await f.h.job(job!.id)).state).toBe("RUNNING");
    const row = await finished(job!.id);
    expect(row.state).toBe("SUCCEEDED");
    const { server: after } = await c.servers.getServer({ id: server!.id });
    expect(after).toMatchObject({ state: ServerState.SERVER_STATE_RUNNING, providerId: pending.providerId, addresses: { private: [expect.stringMatching(/^10\.0\.0\./)], public: [] } });
    expect(after!.launchTime).toBeInstanceOf(Date);
    expect(f.cloud.calls.filter((x) => x === `launch ${server!.id}`)).toHaveLength(1);
    expect(f.kmCalls.some((k) => k.jobId === job!.id && k.purpose === "server.launch" && k.accountId === account)).toBe(true);
    const { events } = await c.servers.listServerEvents({ id: server!.id, pageSize: 1000 });
    expect(events.map((e) => e.type)).toEqual(["LAUNCH_REQUESTED", "PROVIDER_ID_ASSIGNED", "ADDRESSES_CHANGED", "STATE_CHANGED", "DETAILS_CHANGED"]);
    expect(events.filter((e) => e.type !== "LAUNCH_REQUESTED").every((e) => e.jobId === job!.id)).toBe(true);
    const changed = events.find((e) => e.type === "STATE_CHANGED")!;
    expect([changed.fromState, changed.toState]).toEqual([ServerState.SERVER_STATE_PENDING, ServerState.SERVER_STATE_RUNNING]);
    f.cloud.steps = 1;
  });

  it("stops, starts, reboots (seen by a new boot) and terminates, each job done on the observed state", async () => {
    const c = f.client(f.users.operator);
    const { job, server } = await c.servers.launchServer(launch());
    expect((await finished(job!.id)).state).toBe("SUCCEEDED");
    const id = server!.id;
    const pid = async () => (await findServer(f.h.sql, id))!.details.pid;

    const stop = (await c.servers.stopServer({ id, idempotencyKey: "" })).job!;
    expect((await finished(stop.id)).state).toBe("SUCCEEDED");
    expect((await findServer(f.h.sql, id))!.state).toBe("STOPPED");

    const start = (await c.servers.startServer({ id, idempotencyKey: "" })).job!;
    expect((await finished(start.id)).state).toBe("SUCCEEDED");
    expect((await findServer(f.h.sql, id))!.state).toBe("RUNNING");

    const before = await pid();
    f.cloud.steps = 2;
    const reboot = (await c.servers.rebootServer({ id, idempotencyKey: "" })).job!;
    const rebooted = await finished(reboot.id);
    expect(rebooted.state).toBe("SUCCEEDED");
    expect(rebooted.result).toMatchObject({ rebootObserved: "boot marker changed" });
    expect(await pid()).not.toBe(before);
    expect(f.cloud.calls.filter((x) => x.startsWith("reboot "))).toHaveLength(1);
    f.cloud.steps = 1;

    const term = (await c.servers.terminateServer({ id, idempotencyKey: "" })).job!;
    expect((await finished(term.id)).state).toBe("SUCCEEDED");
    const gone = await findServer(f.h.sql, id);
    expect(gone).toMatchObject({ state: "TERMINATED", addresses: { private: [], public: [] } });
    expect(gone!.terminatedAt).toBeInstanceOf(Date);
    expect(await eventTypes(id)).toEqual(expect.arrayContaining(["STOP_REQUESTED", "START_REQUESTED", "REBOOT_REQUESTED", "REBOOT_SENT", "TERMINATE_REQUESTED"]));
    const states = (await c.servers.listServerEvents({ id, pageSize: 1000 })).events.filter((e) => e.type === "STATE_CHANGED").map((e) => ServerState[e.toState]);
    expect(states).toEqual(["SERVER_STATE_RUNNING", "SERVER_STATE_STOPPING", "SERVER_STATE_STOPPED", "SERVER_STATE_PENDING", "SERVER_STATE_RUNNING", "SERVER_STATE_TERMINATING", "SERVER_STATE_TERMINATED"]);
    // A terminated server takes no more actions.
    await expect(c.servers.terminateServer({ id, idempotencyKey: "" })).rejects.toMatchObject({ codeName: "FAILED_PRECONDITION" });
  });

  it("ends a launch the cloud refuses with the job FAILED and the server TERMINATED, saying why", async () => {
    f.cloud.launchError = new DriverError("INVALID", "image img-1 is not available for small");
    try {
      const { job, server } = await f.client(f.users.operator).servers.launchServer(launch());
      const row = await finished(job!.id);
      expect([row.state, row.errorCode]).toEqual(["FAILED", "INVALID_ARGUMENT"]);
      expect(row.errorMessage).toContain("image img-1 is not available");
      expect((await findServer(f.h.sql, server!.id))!.state).toBe("TERMINATED");
      expect(await eventTypes(server!.id)).toEqual(["LAUNCH_REQUESTED", "LAUNCH_FAILED", "STATE_CHANGED"]);
    } finally {
      f.cloud.launchError = null;
    }
  });

  it("fails a launch whose server stops on its own before it ran, at once rather than at the timeout", async () => {
    f.cloud.steps = 1_000;
    try {
      const { job, server } = await f.client(f.users.operator).servers.launchServer(launch());
      const provider = await until(async () => (await findServer(f.h.sql, server!.id))?.providerId, 10_000, "the provider id");
      f.cloud.tamper(provider, "STOPPED");
      const row = await finished(job!.id);
      expect([row.state, row.errorCode]).toEqual(["FAILED", "ABORTED"]);
      expect((await findServer(f.h.sql, server!.id))!.state).toBe("STOPPED");
    } finally {
      f.cloud.steps = 1;
    }
  });

  it("retries a launch that failed retryably and reuses the one provider server (client token = server id)", async () => {
    f.cloud.launchError = new DriverError("THROTTLED", "slow down");
    const { job, server } = await f.client(f.users.operator).servers.launchServer(launch());
    await until(async () => f.cloud.calls.filter((x) => x === `launch ${server!.id}`).length >= 1, 10_000, "a first launch call");
    f.cloud.launchError = null;
    const row = await finished(job!.id);
    expect([row.state, row.attempt]).toEqual(["SUCCEEDED", 2]);
    expect([...f.cloud.servers.values()].filter((s) => s.obs.clientToken === server!.id)).toHaveLength(1);
  });
});

describe("servers.sync", () => {
  it("adopts unknown servers, records a stop done behind the dispatcher's back, retires vanished ones, and stamps the account", async () => {
    const acct = await seedAccount(f, { defaultBudgetCode: "OPS" });
    const c = f.client(f.users.admin);
    const [{ job: j1, server: s1 }, { job: j2, server: s2 }] = [await c.servers.launchServer(launch({ accountId: acct })), await c.servers.launchServer(launch({ accountId: acct }))];
    await finished(j1!.id);
    await finished(j2!.id);
    const p1 = (await findServer(f.h.sql, s1!.id))!.providerId!;
    const p2 = (await findServer(f.h.sql, s2!.id))!.providerId!;
    f.cloud.tamper(p1, "STOPPED");
    f.cloud.remove(p2);
    f.cloud.plant(acct, { providerId: "i-foreign", productId: "big" });
    f.cloud.plant(acct, { providerId: "i-unknown-size", productId: "xl" });

    const { job } = await f.jobs.createJob({ kind: SERVERS_SYNC_KIND, payload: { accountId: acct }, requester: { id: f.users.admin.id, kind: "user", roles: ["admin"], displayName: "admin" } });
    expect((await finished(job.id)).state).toBe("SUCCEEDED");

    expect((await findServer(f.h.sql, s1!.id))!.state).toBe("STOPPED");
    expect((await findServer(f.h.sql, s2!.id))!.state).toBe("TERMINATED");
    expect(await eventTypes(s2!.id)).toContain("VANISHED");
    const { servers } = await c.servers.listServers({ accountId: acct, pageSize: 100 });
    // Adopted in one sync, possibly within one millisecond: the list's order between them is not what this checks.
    const adopted = servers.filter((s) => s.origin === 2).sort((a, b) => a.providerId.localeCompare(b.providerId));
    expect(adopted.map((s) => [s.providerId, s.hourlyPriceMicros, s.budgetCode, s.state])).toEqual([
      ["i-foreign", "2000000", "OPS", ServerState.SERVER_STATE_RUNNING],
      ["i-unknown-size", "0", "OPS", ServerState.SERVER_STATE_RUNNING],
    ]);
    expect(await eventTypes(adopted[0]!.id)).toEqual(["ADOPTED"]);
    const { events } = await c.servers.listServerEvents({ id: s1!.id, pageSize: 100 });
    expect(events.filter((e) => e.type === "STATE_CHANGED").at(-1)).toMatchObject({ jobId: job.id, fromState: ServerState.SERVER_STATE_RUNNING, toState: ServerState.SERVER_STATE_STOPPED });
    const [stamp] = await f.h.sql.query<{ at: Date | null }>`SELECT servers_synced_at AS at FROM accounts WHERE id = ${acct}`;
    expect(stamp!.at).toBeInstanceOf(Date);

    // A second sync finds nothing new: no event, no adoption twice.
    const before = await f.h.sql.query<{ n: bigint }>`SELECT COUNT(*) AS n FROM server_events`;
    const again = await f.jobs.createJob({ kind: SERVERS_SYNC_KIND, payload: { accountId: acct }, requester: { id: f.users.admin.id, kind: "user", roles: ["admin"], displayName: "admin" } });
    expect((await finished(again.job.id)).state).toBe("SUCCEEDED");
    const after = await f.h.sql.query<{ n: bigint }>`SELECT COUNT(*) AS n FROM server_events`;
    expect(Number(after[0]!.n)).toBe(Number(before[0]!.n));
    f.cloud.remove("i-foreign");
    f.cloud.remove("i-unknown-size");
  });

  it("leaves a PENDING server whose launch is still under way alone, and links a launch whose provider id was never recorded", async () => {
    const acct = await seedAccount(f, { defaultBudgetCode: "OPS" });
    const c = f.client(f.users.admin);
    // One launch reached the cloud but its worker died before recording the provider id; another is still being
    // retried (the cloud throttles it) and has reached nothing yet.
    const { job: lostJob, server: lost } = await c.servers.launchServer(launch({ accountId: acct }));
    await finished(lostJob!.id);
    const provider = (await findServer(f.h.sql, lost!.id))!.providerId!;
    await f.h.sql.execute`UPDATE servers SET provider_id = NULL, state = 'PENDING', version = version + 1 WHERE id = ${lost!.id}`;
    f.cloud.launchError = new DriverError("THROTTLED", "slow down");
    const { server: waiting } = await c.servers.launchServer(launch({ accountId: acct }));
    await until(async () => f.cloud.calls.includes(`launch ${waiting!.id}`), 10_000, "a first launch call");
    const { job } = await f.jobs.createJob({ kind: SERVERS_SYNC_KIND, payload: { accountId: acct }, requester: { id: f.users.admin.id, kind: "user", roles: ["admin"], displayName: "admin" } });
    expect((await finished(job.id)).state).toBe("SUCCEEDED");
    expect((await findServer(f.h.sql, waiting!.id))!.state).toBe("PENDING");
    expect(await findServer(f.h.sql, lost!.id)).toMatchObject({ providerId: provider, state: "RUNNING" });
    const { servers } = await c.servers.listServers({ accountId: acct, pageSize: 100 });
    expect(servers).toHaveLength(2);
    f.cloud.launchError = null;
  });
});
