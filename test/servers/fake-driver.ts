// An in-memory cloud for server tests: launches are idempotent by client token, states move on only when observed a
// few times (as a real cloud's do), every boot gets a new pid, and a test can change a server behind the
// dispatcher's back or make the next calls fail.
import { DriverError, type CloudDriver, type LaunchRequest, type ServerObservation, type ServerState } from "../../src/clouds/driver.js";

interface FakeServer {
  /** The account (DriverTarget.account.id) it belongs to. */
  account: string;
  obs: ServerObservation;
  /** The state it moves to after `stepsLeft` more observations. */
  goal: ServerState | null;
  stepsLeft: number;
}

export interface FakeCloud extends CloudDriver {
  servers: Map<string, FakeServer>;
  calls: string[];
  /** Observations before a transition completes (default 1). */
  steps: number;
  /** Thrown by the next launch calls while set. */
  launchError: DriverError | null;
  /** The user data each launch was given, by client token, as a cloud keeps it for its guest. */
  userData: Map<string, string>;
  /** Changes a server without the dispatcher knowing (e.g. its process was killed). */
  tamper(providerId: string, state: ServerState): void;
  /** Makes a server in `account` that the dispatcher never launched. */
  plant(account: string, o: Partial<ServerObservation> & { providerId: string }): void;
  remove(providerId: string): void;
}

export function fakeCloud(name = "fake"): FakeCloud {
  let n = 0;
  let pid = 1000;
  const servers = new Map<string, FakeServer>();
  const calls: string[] = [];
  const get = (id: string): FakeServer => {
    const s = servers.get(id);
    if (!s) throw new DriverError("NOT_FOUND", `no server ${id}`);
    return s;
  };
  const move = (s: FakeServer, via: ServerState, goal: ServerState) => {
    s.obs.state = via;
    s.goal = goal;
    s.stepsLeft = cloud.steps;
  };
  const view = (s: FakeServer): ServerObservation => {
    if (s.goal && s.stepsLeft-- <= 0) {
      s.obs.state = s.goal;
      if (s.goal === "RUNNING") s.obs.details = { pid: String(++pid) };
      if (s.goal !== "RUNNING") s.obs.details = {};
      if (s.goal === "TERMINATED") s.obs.addresses = { private: [], public: [] };
      s.goal = null;
    }
    return structuredClone(s.obs);
  };
  const cloud: FakeCloud = {
    name,
    servers,
    calls,
    steps: 1,
    launchError: null,
    userData: new Map(),
    async testContext() {
      return { providerAccountId: "fake-account" };
    },
    async listRegions() {
      return [{ id: "r1", name: "Region 1", dataCenters: ["r1-a", "r1-b"] }];
    },
    async probeCapabilities() {
      return ["compute"];
    },
    async listProducts() {
      return [];
    },
    async listImages() {
      return [];
    },
    async launch(t, req) {
      calls.push(`launch ${req.clientToken}`);
      if (cloud.launchError) throw cloud.launchError;
      const existing = [...servers.values()].find((s) => s.account === t.account.id && s.obs.clientToken === req.clientToken);
      if (existing) return view(existing);
      const providerId = `i-${++n}`;
      const s: FakeServer = {
        account: t.account.id,
        obs: {
          providerId,
          name: req.name,
          regionId: req.regionId,
          dataCenter: req.dataCenter,
          productId: req.productId,
          imageId: req.imageId,
          state: "PENDING",
          addresses: { private: [`10.0.0.${n}`], public: [] },
          launchedAt: new Date(),
          clientToken: req.clientToken,
          details: {},
          ...launchOptions(req),
        },
        goal: "RUNNING",
        stepsLeft: cloud.steps,
      };
      servers.set(providerId, s);
      if (req.userData !== undefined) cloud.userData.set(req.clientToken, req.userData);
      return view(s);
    },
    async start(_t, ref) {
      calls.push(`start ${ref.providerId}`);
      move(get(ref.providerId), "PENDING", "RUNNING");
    },
    async stop(_t, ref) {
      calls.push(`stop ${ref.providerId}`);
      move(get(ref.providerId), "STOPPING", "STOPPED");
    },
    async reboot(_t, ref) {
      calls.push(`reboot ${ref.providerId}`);
      // The state stays RUNNING (as EC2's does); only the pid tells the new boot.
      const s = get(ref.providerId);
      s.goal = "RUNNING";
      s.stepsLeft = cloud.steps;
    },
    async terminate(_t, ref) {
      calls.push(`terminate ${ref.providerId}`);
      const s = servers.get(ref.providerId);
      if (s && s.obs.state !== "TERMINATED") move(s, "TERMINATING", "TERMINATED");
    },
    async getServer(_t, ref) {
      const s = servers.get(ref.providerId);
      return s ? view(s) : null;
    },
    async listServers(t, regionId) {
      return [...servers.values()].filter((s) => s.account === t.account.id && s.obs.regionId === regionId).map(view);
    },
    tamper(providerId, state) {
      const s = get(providerId);
      s.obs.state = state;
      s.goal = null;
      if (state !== "RUNNING") s.obs.details = {};
    },
    plant(account, o) {
      servers.set(o.providerId, {
        account,
        obs: { name: o.providerId, regionId: "r1", dataCenter: "r1-a", productId: "small", imageId: "img-1", state: "RUNNING", addresses: { private: ["10.9.9.9"], public: [] }, launchedAt: new Date(), clientToken: null, details: { pid: String(++pid) }, ...o },
        goal: null,
        stepsLeft: 0,
      });
    },
    remove(providerId) {
      servers.delete(providerId);
    },
  };
  return cloud;
}

/** What the fake keeps of a launch's options: the server's tags, firewalls and key pair, as a cloud reports them. */
function launchOptions(req: LaunchRequest): Pick<ServerObservation, "tags" | "firewallIds" | "keyPairName"> {
  return { tags: { ...(req.tags ?? {}) }, firewallIds: [...(req.firewallIds ?? [])], keyPairName: req.keyPairName ?? null };
}
