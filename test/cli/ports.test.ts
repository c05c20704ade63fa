// A port in use is found before any role starts: `dispatcher start` with the bridge's port taken exits 2 at once,
// naming the address, the listener and the setting to change, without starting a role, connecting to the databases or
// printing grpc-js' own "No address added" line.
import { createServer, type Server } from "node:net";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createTestEnv, killStrayDispatchers, runDispatcher, type TestEnv } from "../support/process.js";

let t: TestEnv;
let occupied: Server;

beforeAll(async () => {
  t = await createTestEnv({ label: "ports" });
  occupied = createServer();
  await new Promise<void>((r) => occupied.listen(t.ports.bridge, "127.0.0.1", r));
});

afterAll(async () => {
  await killStrayDispatchers();
  await new Promise((r) => occupied?.close(r));
  await t?.cleanup();
});

it("the bridge's port taken: exit 2 before any role starts, naming the address and bridge.port", async () => {
  const r = await runDispatcher(["start"], t.env, 90_000);
  expect(r.code, r.stderr).toBe(2);
  expect(r.stderr).toContain(`cannot listen on 127.0.0.1:${t.ports.bridge} (gRPC-Web bridge): port ${t.ports.bridge} is in use`);
  expect(r.stderr).toContain("bridge.port");
  expect(r.stderr).not.toMatch(/starting role|applying database migrations|No address added/);
}, 120_000);
