// A KM outage makes jobs retry, not fail — end to end with the real job machinery: a worker (real MariaDB and NATS)
// runs a job whose handler reaches a cloud through withCloud(), with a real KM client calling a real KM over mutual
// TLS. While KM is down every attempt fails retryably (the job is never FAILED); once KM is back the job succeeds and
// the driver saw the credential's fields.
import { z } from "zod";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Resources } from "../../src/app/resources.js";
import { withCloud } from "../../src/clouds/access.js";
import { DriverError, type CloudDriver, type DriverTarget } from "../../src/clouds/driver.js";
import { createDriverRegistry } from "../../src/clouds/registry.js";
import { newId } from "../../src/db/ids.js";
import type { JobKind } from "../../src/jobs/catalog.js";
import { startWorker, type RunningWorker } from "../../src/jobs/worker.js";
import type { KmClient } from "../../src/km/client.js";
import { generateKeyText } from "../../src/km/keys.js";
import { openExecHarness, type ExecHarness } from "../jobs/exec-support.js";
import { sql as credentialsSql, startTestKm, type TestKm } from "./support.js";
import { sleep, until } from "../support/poll.js";
import { insertAccount } from "../support/rows.js";

const FIELDS = { access_key_id: "AKIAOUTAGETEST", secret_access_key: "outage-test-secret-value" };

/** A cloud driver that only answers testContext, and remembers the credentials it was handed. */
function recordingDriver(seen: Readonly<Record<string, string>>[]): CloudDriver {
  const unsupported = async (): Promise<never> => {
    throw new DriverError("UNSUPPORTED", "not part of this test");
  };
  return {
    name: "outagetest",
    async testContext(target: DriverTarget) {
      seen.push({ ...target.credentials });
      return { providerAccountId: "provider-outage" };
    },
    listRegions: unsupported,
    probeCapabilities: unsupported,
    listProducts: unsupported,
    listImages: unsupported,
    launch: unsupported,
    start: unsupported,
    stop: unsupported,
    reboot: unsupported,
    terminate: unsupported,
    getServer: unsupported,
    listServers: unsupported,
  };
}

/** A job kind whose handler reaches the account's cloud the only way job code may: withCloud(). */
const probeKind: JobKind<{ accountId: string }> = {
  kind: "kmoutageprobe",
  payload: z.object({ accountId: z.string() }),
  async handle(ctx, payload) {
    const answer = await withCloud(ctx, payload.accountId, { purpose: "outage test", timeoutMs: 5_000 }, (driver, target, call) => driver.testContext(target, call));
    return { status: "succeeded", result: { providerAccountId: answer.providerAccountId } };
  },
  ackWaitMs: 30_000,
  maxAttempts: 100,
  backoffMs: [200],
  timeoutMs: 120_000,
  permission: "jobs.read",
};

let h: ExecHarness;
let km: TestKm;
let client: KmClient;
let worker: RunningWorker;
const seen: Readonly<Record<string, string>>[] = [];
let accountId: string;
let credentialId: string;

beforeAll(async () => {
  [h, km] = await Promise.all([openExecHarness("kmoutage"), startTestKm({ label: "kmoutage", masterKeys: generateKeyText(1) })]);
  h.catalog.register(probeKind);
  accountId = newId();
  credentialId = (await km.client("dispatcher").storeCredential({ accountId, type: "aws-access-key", fields: FIELDS })).id;
  await insertAccount(h.sql, { id: accountId, name: "outage", credentialId, cloud: { driver: "outagetest", endpoint: "https://cloud.invalid" } });
  // The worker identity's client, as resources.km() gives a worker process.
  client = km.client("worker");
  const resources: Resources = { ...h.resources("kmoutage"), drivers: createDriverRegistry([recordingDriver(seen)]), km: () => client };
  worker = await startWorker({ resources, catalog: h.catalog });
});

afterAll(async () => {
  await worker?.stop(1_000);
  await km?.cleanup();
  await h?.close();
});

describe("a KM outage", () => {
  it("makes the job's attempts fail retryably (never FAILED); with KM back the job succeeds with the right credentials", async () => {
    // Same port when it comes back, so the client reconnects to the new instance.
    km.config.km.port = km.km.port;
    await km.stop();

    const id = await h.insertJob({ kind: probeKind.kind, payload: { accountId }, maxAttempts: 100, deadlineMs: 120_000 });
    await h.publish(id, probeKind.kind);

    // At least three attempts fail while KM is down, each scheduled for a retry with KM's unavailability as the reason.
    const retries = await until(
      async () => {
        const events = (await h.events(id)).filter((e) => e.type === "retry_scheduled");
        return events.length >= 3 ? events : undefined;
      },
      30_000,
      "three retries while KM is down",
    );
    for (const e of retries) expect(e.message).toMatch(/UNAVAILABLE: KM is unavailable for the credentials of account/);
    const during = await h.job(id);
    expect(during.state).not.toBe("FAILED");
    expect(during.state).not.toBe("SUCCEEDED");
    expect(during.attempt).toBeGreaterThanOrEqual(3);
    expect(seen).toHaveLength(0);
    // Nothing secret went into the job's row or events.
    expect(JSON.stringify([during, retries])).not.toContain(FIELDS.secret_access_key);

    await sleep(200);
    await km.restart();
    const done = await h.waitForState(id, ["SUCCEEDED", "FAILED"], 30_000);
    expect(done.state, JSON.stringify(done)).toBe("SUCCEEDED");
    expect(done.result).toEqual({ providerAccountId: "provider-outage" });
    expect(done.attempt).toBeGreaterThan(retries.length);
    expect(seen).toEqual([FIELDS]);
    expect((await h.events(id)).some((e) => e.type === "failed")).toBe(false);

    // KM's audit trail names the job and the worker for the credential it handed out.
    await km.km.audit.flush();
    const audited = await credentialsSql<{ principal: string; job_id: string; result: string }>(km.dbUrl, "SELECT principal, job_id, result FROM audit_events WHERE action = 'get' AND credential_id = ?", [credentialId]);
    expect(audited).toEqual([{ principal: "cert:worker", job_id: id, result: "OK" }]);
  }, 90_000);
});
