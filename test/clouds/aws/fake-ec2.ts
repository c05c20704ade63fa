// A fake EC2 endpoint on node:http for driver tests: it answers the EC2 Query API (form-encoded POST, Action=…) that
// the real SDK sends, keeps instances in memory (launch → describe → terminate round-trips, ClientToken idempotency,
// state transitions observed one Describe later) with their security groups, key pair, tags and Elastic IP
// (src: fake-ec2-network.ts) and EBS volumes, snapshots and AMIs (fake-ec2-storage.ts), checks the access key of each
// signed request, paginates, and can be told to fail the next N calls with a given error code.
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Ec2Fault, filterValues, listOf, specifiedTags } from "./ec2-query.js";
import * as x from "./ec2-xml.js";
import { DEFAULT_GROUP_ID, FakeNetwork } from "./fake-ec2-network.js";
import { FakeStorage } from "./fake-ec2-storage.js";

export interface RecordedCall {
  action: string;
  params: URLSearchParams;
  /** The access key id and region of the request's SigV4 Authorization header. */
  accessKeyId: string;
  region: string;
  authorization: string;
  /** The X-Amz-Security-Token header (temporary credentials). */
  securityToken: string;
}

interface Failure {
  code: string;
  status: number;
  message: string;
  /** Only calls of this action fail (others pass untouched); undefined: any. */
  action?: string;
}

const STATUS_OF: Readonly<Record<string, number>> = {
  RequestLimitExceeded: 503,
  InternalError: 500,
  Unavailable: 503,
  AuthFailure: 401,
  UnauthorizedOperation: 403,
  DryRunOperation: 412,
};

export interface FakeEc2Options {
  /** Access key ids the fake accepts; others get AuthFailure. Default: any. */
  accessKeyIds?: string[];
  regions?: string[];
  /** Largest page DescribeInstances returns, whatever MaxResults asks. */
  pageSize?: number;
  maxInstances?: number;
  /** Actions that answer UnauthorizedOperation (an IAM policy that forbids them). */
  forbidden?: string[];
  /** Elastic IPs the account may hold (EC2's default is 5). */
  maxAddresses?: number;
}

export class FakeEc2 {
  readonly instances = new Map<string, x.FakeInstance>();
  readonly network: FakeNetwork;
  readonly storage: FakeStorage;
  readonly calls: RecordedCall[] = [];
  readonly options: Required<FakeEc2Options>;
  private readonly failures: Failure[] = [];
  private hangs = 0;
  private readonly byToken = new Map<string, string>();
  private server: Server | undefined;
  private seq = 0;

  constructor(options: FakeEc2Options = {}) {
    this.options = { accessKeyIds: [], regions: ["us-east-1", "eu-west-1"], pageSize: 1000, maxInstances: 20, forbidden: [], maxAddresses: 5, ...options };
    this.network = new FakeNetwork(this.instances, this.options.maxAddresses);
    this.storage = new FakeStorage(this.instances);
    this.network.otherTags = (id) => this.storage.tagsOf(id);
  }

  /** The calls of one action, oldest first. */
  callsOf(action: string): RecordedCall[] {
    return this.calls.filter((c) => c.action === action);
  }

  async start(): Promise<string> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    return this.url;
  }

  get url(): string {
    const { port } = this.server!.address() as AddressInfo;
    return `http://127.0.0.1:${port}`;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  /** The next `n` calls (of `action`, when given) answer with this EC2 error. */
  failNext(n: number, code: string, options: { status?: number; message?: string; action?: string } = {}): void {
    for (let i = 0; i < n; i++) this.failures.push({ code, status: options.status ?? STATUS_OF[code] ?? 400, message: options.message ?? `${code} (injected)`, action: options.action });
  }

  /** The next `n` calls get no answer at all (until the server stops): a provider that hangs. */
  hangNext(n: number): void {
    this.hangs += n;
  }

  actions(): string[] {
    return this.calls.map((c) => c.action);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const params = new URLSearchParams(Buffer.concat(chunks).toString("utf8"));
    const action = params.get("Action") ?? "";
    const authorization = String(req.headers.authorization ?? "");
    const m = /Credential=([^/]+)\/\d{8}\/([^/]+)\/ec2\/aws4_request/.exec(authorization);
    const call: RecordedCall = { action, params, accessKeyId: m?.[1] ?? "", region: m?.[2] ?? "", authorization, securityToken: String(req.headers["x-amz-security-token"] ?? "") };
    this.calls.push(call);
    const requestId = `${randomBytes(4).toString("hex")}-35bd-4eac-99ed-be587EXAMPLE`;
    const reply = (status: number, body: string) => {
      res.writeHead(status, { "content-type": "text/xml;charset=UTF-8", "x-amzn-requestid": requestId });
      res.end(body);
    };
    const fail = (status: number, code: string, message: string) => reply(status, x.errorDocument(code, message, requestId));

    if (req.method !== "POST" || params.get("Version") !== "2016-11-15") return fail(400, "InvalidAction", "The action or version is not valid for this web service.");
    if (this.hangs > 0) {
      this.hangs--;
      return;
    }
    if (!m) return fail(401, "AuthFailure", "AWS was not able to validate the provided access credentials");
    if (this.options.accessKeyIds.length > 0 && !this.options.accessKeyIds.includes(call.accessKeyId)) return fail(401, "AuthFailure", "AWS was not able to validate the provided access credentials");
    const i = this.failures.findIndex((f) => !f.action || f.action === action);
    if (i >= 0) {
      const [f] = this.failures.splice(i, 1);
      return fail(f!.status, f!.code, f!.message);
    }
    if (this.options.forbidden.includes(action)) return fail(403, "UnauthorizedOperation", `You are not authorized to perform this operation. User: arn:aws:iam::${x.OWNER_ID}:user/test is not authorized to perform: ec2:${action}`);
    if (params.get("DryRun") === "true") return fail(412, "DryRunOperation", "Request would have succeeded, but DryRun flag is set.");
    try {
      const inner = this.answer(action, params, call.region);
      if (inner === undefined) return fail(400, "InvalidAction", `The action ${action} is not valid for this web service.`);
      reply(200, x.envelope(action, requestId, inner));
    } catch (err) {
      if (err instanceof Ec2Fault) return fail(err.status, err.code, err.message);
      throw err;
    }
  }

  private answer(action: string, p: URLSearchParams, region: string): string | undefined {
    switch (action) {
      case "DescribeRegions":
        return `  <regionInfo>\n${this.options.regions.map(x.regionItem).join("\n")}\n  </regionInfo>`;
      case "DescribeAvailabilityZones": {
        const r = filterValues(p, "region-name")[0] ?? region;
        return `  <availabilityZoneInfo>\n${["a", "b", "c"].map((l, n) => x.zoneItem(r, l, n + 1)).join("\n")}\n  </availabilityZoneInfo>`;
      }
      case "DescribeAccountAttributes":
        return x.accountAttributes(this.options.maxInstances);
      case "DescribeVpcs":
        return x.VPCS;
      case "DescribeInstanceTypeOfferings": {
        const types = filterValues(p, "instance-type").filter((t) => !t.startsWith("r5"));
        return `  <instanceTypeOfferingSet>\n${types.map((t) => x.offeringItem(t, region)).join("\n")}\n  </instanceTypeOfferingSet>`;
      }
      case "RunInstances":
        return this.run(p, region);
      case "DescribeInstances":
        return this.describe(p);
      case "StartInstances":
        return this.transition(p, { stopped: "pending" }, ["stopping", "shutting-down", "terminated"]);
      case "StopInstances":
        return this.transition(p, { running: "stopping", pending: "stopping" }, ["shutting-down", "terminated"]);
      case "TerminateInstances":
        return this.transition(p, { pending: "shutting-down", running: "shutting-down", stopping: "shutting-down", stopped: "shutting-down" });
      case "RebootInstances":
        this.known(listOf(p, "InstanceId"));
        return "  <return>true</return>";
      default:
        return this.storage.answer(action, p) ?? this.network.answer(action, p, region);
    }
  }

  private item(i: x.FakeInstance): string {
    return x.instanceItem(i, (id) => this.network.groups.get(id)?.groupName ?? "", this.network.publicIpOf(i.instanceId));
  }

  private run(p: URLSearchParams, region: string): string {
    const token = p.get("ClientToken") ?? "";
    const imageId = p.get("ImageId") ?? "";
    if (!/^ami-[0-9a-f]+$/.test(imageId)) throw new Ec2Fault(400, "InvalidAMIID.Malformed", `Invalid id: "${imageId}" (expecting "ami-...")`);
    const existing = token ? this.byToken.get(token) : undefined;
    let instance = existing ? this.instances.get(existing) : undefined;
    if (!instance) {
      const groupIds = listOf(p, "SecurityGroupId").map((id) => this.network.group(id).groupId);
      const keyName = p.get("KeyName");
      if (keyName !== null && !this.network.keyByName(keyName)) throw new Ec2Fault(400, "InvalidKeyPair.NotFound", `The key pair '${keyName}' does not exist`);
      const live = [...this.instances.values()].filter((i) => i.state !== "terminated").length;
      if (live >= this.options.maxInstances) throw new Ec2Fault(400, "InstanceLimitExceeded", `You have requested more instances (${live + 1}) than your current instance limit of ${this.options.maxInstances} allows`);
      const n = ++this.seq;
      instance = {
        instanceId: `i-${randomBytes(8).toString("hex").slice(0, 17)}`,
        reservationId: `r-${randomBytes(8).toString("hex").slice(0, 17)}`,
        imageId,
        instanceType: p.get("InstanceType") ?? "m1.small",
        availabilityZone: p.get("Placement.AvailabilityZone") ?? `${region}a`,
        state: "pending",
        launchTime: new Date(Math.floor(Date.now() / 1000) * 1000),
        clientToken: token,
        tags: specifiedTags(p, "instance"),
        groupIds: groupIds.length > 0 ? groupIds : [DEFAULT_GROUP_ID],
        keyName,
        userData: p.get("UserData") ?? "",
        privateIp: `192.168.1.${(n % 250) + 2}`,
        publicIp: null,
      };
      this.instances.set(instance.instanceId, instance);
      if (token) this.byToken.set(token, instance.instanceId);
    }
    return `  <reservationId>${instance.reservationId}</reservationId>
  <ownerId>${x.OWNER_ID}</ownerId>
  <groupSet/>
  <instancesSet>
${this.item(instance)}
  </instancesSet>`;
  }

  private describe(p: URLSearchParams): string {
    const ids = listOf(p, "InstanceId");
    if (ids.length > 0 && p.has("MaxResults")) throw new Ec2Fault(400, "InvalidParameterCombination", "The parameter instancesSet cannot be used with the parameter maxResults");
    const selected = ids.length > 0 ? this.known(ids) : [...this.instances.values()];
    // What a launch or a state change set in motion is seen done one Describe later.
    for (const i of selected) this.settle(i);
    const states = filterValues(p, "instance-state-name");
    const matching = selected.filter((i) => states.length === 0 || states.includes(i.state));
    const size = Math.min(Number(p.get("MaxResults") ?? 1000), this.options.pageSize);
    const start = Number(p.get("NextToken") ?? 0);
    const page = matching.slice(start, start + size);
    const next = start + size < matching.length ? `  <nextToken>${start + size}</nextToken>` : "";
    const reservations = page.map((i) => `    <item>
      <reservationId>${i.reservationId}</reservationId>
      <ownerId>${x.OWNER_ID}</ownerId>
      <groupSet/>
      <instancesSet>
${this.item(i)}
      </instancesSet>
    </item>`);
    return `  <reservationSet>\n${reservations.join("\n")}\n  </reservationSet>${next ? `\n${next}` : ""}`;
  }

  /** Moves each instance by `moves`; one in a `refused` state fails the call; any other stays as it is (EC2 is idempotent there). */
  private transition(p: URLSearchParams, moves: Readonly<Record<string, string>>, refused: readonly string[] = []): string {
    const selected = this.known(listOf(p, "InstanceId"));
    const stuck = selected.find((i) => refused.includes(i.state));
    if (stuck) throw new Ec2Fault(400, "IncorrectInstanceState", `The instance '${stuck.instanceId}' is not in a state from which it can be ${p.get("Action")}.`);
    const items = selected.map((i) => {
      const previous = i.state;
      i.state = moves[i.state] ?? i.state;
      return x.stateChangeItem(i.instanceId, previous, i.state);
    });
    return `  <instancesSet>\n${items.join("\n")}\n  </instancesSet>`;
  }

  private settle(i: x.FakeInstance): void {
    const next: Record<string, string> = { pending: "running", stopping: "stopped", "shutting-down": "terminated" };
    const to = next[i.state];
    if (!to) return;
    i.state = to;
    i.publicIp = to === "running" ? `54.194.252.${(this.seq % 250) + 2}` : null;
    // A terminated instance's Elastic IP is disassociated (and stays allocated).
    if (to === "terminated") this.network.released(i.instanceId);
  }

  private known(ids: string[]): x.FakeInstance[] {
    return ids.map((id) => {
      if (!/^i-[0-9a-f]{8,17}$/.test(id)) throw new Ec2Fault(400, "InvalidInstanceID.Malformed", `Invalid id: "${id}"`);
      const i = this.instances.get(id);
      if (!i) throw new Ec2Fault(400, "InvalidInstanceID.NotFound", `The instance ID '${id}' does not exist`);
      return i;
    });
  }
}
