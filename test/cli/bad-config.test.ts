// Bad configuration and missing dependencies at start, through the real command: exit code 2, one message on stderr
// that names each bad field with its variable (or the URL) and says what to do, no stack trace, no secret.
// The processes all start at once in beforeAll; each test checks one of them.
import { writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestEnv, freePort, killStrayDispatchers, runDispatcher, type Finished, type TestEnv } from "../support/process.js";

const PASSWORD = "hunter2-secret";
let t: TestEnv;
let closedPort: number;
let occupied: Server;
const runs: Record<string, Promise<Finished>> = {};

const start = (extra: Record<string, string | undefined>, args = ["start"]): Promise<Finished> => runDispatcher(args, t.with(extra), 60_000);

beforeAll(async () => {
  t = await createTestEnv({ label: "badcfg", env: { DISPATCHER_MQ_CONNECT_TIMEOUT_MS: "3000" } });
  closedPort = await freePort();
  occupied = createServer();
  await new Promise<void>((r) => occupied.listen(t.ports.server, "127.0.0.1", r));
  const file = join(t.dir, "bad.json");
  writeFileSync(file, JSON.stringify({ server: { port: "x3302" }, logging: { level: "info" } }));
  const unreachable = `mysql://root:${PASSWORD}@127.0.0.1:${closedPort}/dispatcher_x`;

  runs.portAbc = start({ DISPATCHER_SERVER_PORT: "abc" });
  runs.negativeGrace = start({ DISPATCHER_SERVER_SHUTDOWN_GRACE_MS: "-1" });
  runs.several = start({
    DISPATCHER_SERVER_PORT: "abc",
    DISPATCHER_SERVER_SHUTDOWN_GRACE_MS: "-1",
    DISPATCHER_LOGGING_LEVEL: "loud",
    DISPATCHER_MQ_URL: "http://127.0.0.1:4222",
    DISPATCHER_PROVISIONING_URL: `mysql://root:${PASSWORD}@127.0.0.1/no spaces allowed`,
  });
  // Variables win over the file, so the test environment's port must not hide the file's.
  runs.file = start({ DISPATCHER_SERVER_PORT: undefined }, ["--config", file, "start"]);
  // A process waits for its stores (startup.waitForStoresMs, 0: for ever); these give up after 2 s. Their server port
  // is a free one: the ports are checked before anything connects, and the environment's is the one held above.
  const serverPort = async (): Promise<string> => String(await freePort());
  runs.dbDownStart = start({ DISPATCHER_PROVISIONING_URL: unreachable, DISPATCHER_STARTUP_WAIT_FOR_STORES_MS: "2000", DISPATCHER_SERVER_PORT: await serverPort() });
  runs.analyticsDown = start({ DISPATCHER_ANALYTICS_URL: `mysql://root@127.0.0.1:${closedPort}/dispatcher_y` }, ["migrate"]);
  runs.natsDown = start({ DISPATCHER_MQ_URL: `nats://127.0.0.1:${closedPort}`, DISPATCHER_STARTUP_WAIT_FOR_STORES_MS: "2000", DISPATCHER_SERVER_PORT: await serverPort() });
  runs.portTaken = start({});
});

afterAll(async () => {
  await Promise.allSettled(Object.values(runs));
  await killStrayDispatchers();
  await new Promise((r) => occupied?.close(r));
  await t?.cleanup();
});

/** Exit 2, the expected phrases on stderr, no stack trace, no password, and nothing started. */
async function expectRefusal(name: string, phrases: (string | RegExp)[]): Promise<Finished> {
  const r = await (runs[name] as Promise<Finished>);
  const context = `${name}:\n${r.stderr}`;
  expect(r.code, context).toBe(2);
  for (const p of phrases) {
    if (typeof p === "string") expect(r.stderr, context).toContain(p);
    else expect(r.stderr, context).toMatch(p);
  }
  expect(r.stderr, "no stack trace").not.toMatch(/^\s+at /m);
  expect(r.stderr + r.stdout).not.toContain(PASSWORD);
  expect(r.stderr).not.toContain("ready:");
  return r;
}

describe("bad configuration: exit 2 before doing anything", () => {
  it("server port `abc`: names the field and its variable, says what a port is and where the reference is", async () => {
    const r = await expectRefusal("portAbc", ["server.port (DISPATCHER_SERVER_PORT)", '"abc"', "1 to 65535", "README.md"]);
    expect(r.stderr).not.toContain("applying database migrations");
  });

  it("a negative shutdown grace", async () => {
    await expectRefusal("negativeGrace", ["server.shutdownGraceMs (DISPATCHER_SERVER_SHUTDOWN_GRACE_MS)", '"-1"', "0 or more"]);
  });

  it("several bad fields: every one listed in one message, a secret URL's value hidden", async () => {
    const r = await expectRefusal("several", [
      "server.port (DISPATCHER_SERVER_PORT)",
      "server.shutdownGraceMs (DISPATCHER_SERVER_SHUTDOWN_GRACE_MS)",
      "logging.level (DISPATCHER_LOGGING_LEVEL)",
      "mq.url (DISPATCHER_MQ_URL)",
      "provisioning.url (DISPATCHER_PROVISIONING_URL) = (hidden)",
      "expected mysql://user:password@host:port/database",
    ]);
    expect(r.stderr.match(/^ {2}- /gm)).toHaveLength(5);
    expect(r.stderr.match(/invalid configuration/g)).toHaveLength(1);
  });

  it("a bad field in the --config file names the file and the key", async () => {
    await expectRefusal("file", [/bad\.json: server\.port\) = "x3302": expected a port number/]);
  });
});

describe("dependencies down at start, waited for no longer than startup.waitForStoresMs: exit 2 with what to start", () => {
  it("MariaDB unreachable (`start`): names the server and URL without the password, and how to start MariaDB", async () => {
    const r = await expectRefusal("dbDownStart", [`MariaDB is not reachable at 127.0.0.1:${closedPort}`, `mysql://root:***@127.0.0.1:${closedPort}/dispatcher_x`, "start-stop-daemon", "/usr/sbin/mariadbd"]);
    expect(r.stdout).toContain("waiting for MariaDB");
  });

  it("the analytics database unreachable (`migrate`): names its URL", async () => {
    await expectRefusal("analyticsDown", [`MariaDB is not reachable at 127.0.0.1:${closedPort}`, `127.0.0.1:${closedPort}/dispatcher_y`]);
  });

  it("NATS unreachable: names the URL and how to start nats-server with JetStream", async () => {
    const r = await expectRefusal("natsDown", [`NATS is not reachable at nats://127.0.0.1:${closedPort}`, "/usr/sbin/nats-server", `-p ${closedPort} -js`]);
    expect(r.stdout).toContain("waiting for NATS");
  });

  it("the server port taken by another process: says so, exit 2", async () => {
    await expectRefusal("portTaken", [`cannot listen on 127.0.0.1:${t.ports.server}`, "in use", "choose another port"]);
  });
});
