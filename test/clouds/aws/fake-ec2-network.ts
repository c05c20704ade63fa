// The fake EC2's security groups, Elastic IPs, key pairs and tags: kept in memory with EC2's rules and error codes
// (InvalidGroup.Duplicate/NotFound, InvalidPermission.Duplicate/NotFound, DependencyViolation, CannotDelete,
// Resource.AlreadyAssociated, InvalidIPAddress.InUse, InvalidKeyPair.Duplicate, InvalidKey.Format,
// AddressLimitExceeded, …), each action's parameters checked by name as EC2 does.
import { createHash, randomBytes } from "node:crypto";
import { generateKeyPair, parsePublicKey } from "../../../src/clouds/ssh-keys.js";
import { FILTER, TAG_SPEC, Ec2Fault, checkParams, filterValues, listOf, specifiedTags, tagFiltersPass } from "./ec2-query.js";
import { addressItem, keyPairItem, securityGroupItem, securityGroupRuleItem, type FakeAddress, type FakeGroup, type FakeKeyPair, type FakeRule } from "./ec2-xml-network.js";
import type { FakeInstance } from "./ec2-xml.js";

const hex = (n: number) => randomBytes(Math.ceil(n / 2)).toString("hex").slice(0, n);
const DEFAULT_VPC = "vpc-1a2b3c4d";
export const DEFAULT_GROUP_ID = "sg-1a2b3c4d";
const PERMISSION = /^IpPermissions\.\d+\.(IpProtocol|FromPort|ToPort|IpRanges\.\d+\.(CidrIp|Description)|Ipv6Ranges\.\d+\.(CidrIpv6|Description)|Groups\.\d+\.(GroupId|UserId|GroupName|Description)|PrefixListIds\.\d+\.(PrefixListId|Description))$/;

export class FakeNetwork {
  readonly groups = new Map<string, FakeGroup>();
  readonly addresses = new Map<string, FakeAddress>();
  readonly keyPairs = new Map<string, FakeKeyPair>();
  /** The tags of resources kept elsewhere (volumes, snapshots, images), for CreateTags and DeleteTags. */
  otherTags: ((id: string) => Map<string, string> | undefined) | undefined;
  private seq = 0;

  constructor(
    private readonly instances: Map<string, FakeInstance>,
    private readonly maxAddresses: number,
  ) {
    this.groups.set(DEFAULT_GROUP_ID, {
      groupId: DEFAULT_GROUP_ID,
      groupName: "default",
      description: "default VPC security group",
      vpcId: DEFAULT_VPC,
      region: "us-east-1",
      rules: [
        { id: `sgr-${hex(17)}`, egress: false, protocol: "-1", from: null, to: null, peer: { groupId: DEFAULT_GROUP_ID }, description: "" },
        { id: `sgr-${hex(17)}`, egress: true, protocol: "-1", from: null, to: null, peer: { cidr: "0.0.0.0/0" }, description: "" },
      ],
      tags: new Map(),
    });
  }

  answer(action: string, p: URLSearchParams, region: string): string | undefined {
    switch (action) {
      case "DescribeSecurityGroups":
        return this.describeGroups(p);
      case "CreateSecurityGroup":
        return this.createGroup(p, region);
      case "DeleteSecurityGroup":
        return this.deleteGroup(p);
      case "AuthorizeSecurityGroupIngress":
      case "AuthorizeSecurityGroupEgress":
        return this.authorize(p, action.endsWith("Egress"));
      case "RevokeSecurityGroupIngress":
      case "RevokeSecurityGroupEgress":
        return this.revoke(p, action.endsWith("Egress"));
      case "ModifyInstanceAttribute":
        return this.modifyGroups(p);
      case "AllocateAddress":
        return this.allocate(p, region);
      case "DescribeAddresses":
        return this.describeAddresses(p);
      case "AssociateAddress":
        return this.associate(p);
      case "DisassociateAddress":
        return this.disassociate(p);
      case "ReleaseAddress":
        return this.release(p);
      case "ImportKeyPair":
      case "CreateKeyPair":
        return this.keyPair(p, region, action === "ImportKeyPair");
      case "DescribeKeyPairs":
        return this.describeKeyPairs(p);
      case "DeleteKeyPair":
        return this.deleteKeyPair(p);
      case "CreateTags":
      case "DeleteTags":
        return this.tags(p, action === "CreateTags");
      default:
        return undefined;
    }
  }

  group(id: string): FakeGroup {
    const g = this.groups.get(id);
    if (!g) throw new Ec2Fault(400, /^sg-[0-9a-f]+$/.test(id) ? "InvalidGroup.NotFound" : "InvalidGroupId.Malformed", `The security group '${id}' does not exist`);
    return g;
  }

  keyByName(name: string): FakeKeyPair | undefined {
    return [...this.keyPairs.values()].find((k) => k.keyName === name);
  }

  /** What a terminated instance gives up: its Elastic IP's association. */
  released(instanceId: string): void {
    for (const a of this.addresses.values()) if (a.instanceId === instanceId) Object.assign(a, { instanceId: null, associationId: null, privateIp: null });
  }

  publicIpOf(instanceId: string): string | null {
    return [...this.addresses.values()].find((a) => a.instanceId === instanceId)?.publicIp ?? null;
  }

  private describeGroups(p: URLSearchParams): string {
    checkParams(p, [], [/^GroupId\.\d+$/, /^GroupName\.\d+$/, FILTER, /^MaxResults$/, /^NextToken$/]);
    const ids = listOf(p, "GroupId");
    if (ids.length > 0 && p.has("MaxResults")) throw new Ec2Fault(400, "InvalidParameterCombination", "The parameter groupIds cannot be used with the parameter maxResults");
    let selected = ids.length > 0 ? ids.map((id) => this.group(id)) : [...this.groups.values()];
    const names = [...listOf(p, "GroupName"), ...filterValues(p, "group-name")];
    if (names.length > 0) selected = selected.filter((g) => names.includes(g.groupName));
    const groupIds = filterValues(p, "group-id");
    if (groupIds.length > 0) selected = selected.filter((g) => groupIds.includes(g.groupId));
    selected = selected.filter((g) => tagFiltersPass(p, g.tags));
    const size = Number(p.get("MaxResults") ?? 1000);
    const start = Number(p.get("NextToken") ?? 0);
    const page = selected.slice(start, start + size);
    const next = start + size < selected.length ? `\n  <nextToken>${start + size}</nextToken>` : "";
    return `  <securityGroupInfo>\n${page.map(securityGroupItem).join("\n")}\n  </securityGroupInfo>${next}`;
  }

  private createGroup(p: URLSearchParams, region: string): string {
    checkParams(p, ["GroupName", "GroupDescription"], [/^GroupName$/, /^GroupDescription$/, /^VpcId$/, TAG_SPEC]);
    const name = p.get("GroupName")!;
    if (/^sg-/i.test(name)) throw new Ec2Fault(400, "InvalidParameterValue", "Group names may not be in the format sg-*");
    if ([...this.groups.values()].some((g) => g.groupName === name && g.vpcId === DEFAULT_VPC)) throw new Ec2Fault(400, "InvalidGroup.Duplicate", `The security group '${name}' already exists for VPC '${DEFAULT_VPC}'`);
    const g: FakeGroup = {
      groupId: `sg-${hex(17)}`,
      groupName: name,
      description: p.get("GroupDescription")!,
      vpcId: DEFAULT_VPC,
      region,
      // A new VPC group lets everything out and nothing in.
      rules: [{ id: `sgr-${hex(17)}`, egress: true, protocol: "-1", from: null, to: null, peer: { cidr: "0.0.0.0/0" }, description: "" }],
      tags: specifiedTags(p, "security-group"),
    };
    this.groups.set(g.groupId, g);
    const tags = [...g.tags].map(([k, v]) => `    <item>\n      <key>${k}</key>\n      <value>${v}</value>\n    </item>`).join("\n");
    return `  <return>true</return>\n  <groupId>${g.groupId}</groupId>\n  <tagSet>\n${tags}\n  </tagSet>`;
  }

  private deleteGroup(p: URLSearchParams): string {
    checkParams(p, ["GroupId"], [/^GroupId$/, /^GroupName$/]);
    const g = this.group(p.get("GroupId")!);
    if (g.groupName === "default") throw new Ec2Fault(400, "CannotDelete", `the specified group: "${g.groupId}" name: "default" cannot be deleted by a user`);
    const user = [...this.instances.values()].find((i) => i.state !== "terminated" && i.groupIds.includes(g.groupId));
    const referrer = [...this.groups.values()].find((o) => o !== g && o.rules.some((r) => "groupId" in r.peer && r.peer.groupId === g.groupId));
    if (user || referrer) throw new Ec2Fault(400, "DependencyViolation", `resource ${g.groupId} has a dependent object`);
    this.groups.delete(g.groupId);
    return `  <return>true</return>\n  <groupId>${g.groupId}</groupId>`;
  }

  /** The request's permissions, one FakeRule per peer, with EC2's checks. */
  private permissions(p: URLSearchParams, egress: boolean): FakeRule[] {
    checkParams(p, ["GroupId", "IpPermissions.1.IpProtocol"], [/^GroupId$/, PERMISSION, TAG_SPEC]);
    const out: FakeRule[] = [];
    for (let n = 1; p.has(`IpPermissions.${n}.IpProtocol`); n++) {
      const at = `IpPermissions.${n}`;
      const protocol = p.get(`${at}.IpProtocol`)!;
      if (!["tcp", "udp", "icmp", "-1"].includes(protocol)) throw new Ec2Fault(400, "InvalidParameterValue", `Invalid value '${protocol}' for IP protocol. Unknown protocol.`);
      let from: number | null = p.has(`${at}.FromPort`) ? Number(p.get(`${at}.FromPort`)) : null;
      let to: number | null = p.has(`${at}.ToPort`) ? Number(p.get(`${at}.ToPort`)) : null;
      if (protocol === "tcp" || protocol === "udp") {
        if (from === null || to === null || from < 0 || to > 65535 || from > to) throw new Ec2Fault(400, "InvalidParameterValue", `Invalid value '${from}-${to}' for portRange. Must specify both from and to ports with TCP/UDP.`);
      } else if (protocol === "-1") [from, to] = [null, null];
      const peers: Array<[FakeRule["peer"], string]> = [];
      for (let r = 1; p.has(`${at}.IpRanges.${r}.CidrIp`); r++) {
        const cidr = p.get(`${at}.IpRanges.${r}.CidrIp`)!;
        if (!/^\d+\.\d+\.\d+\.\d+\/\d+$/.test(cidr)) throw new Ec2Fault(400, "InvalidParameterValue", `CIDR block ${cidr} is malformed`);
        peers.push([{ cidr }, p.get(`${at}.IpRanges.${r}.Description`) ?? ""]);
      }
      for (let r = 1; p.has(`${at}.Ipv6Ranges.${r}.CidrIpv6`); r++) peers.push([{ cidr6: p.get(`${at}.Ipv6Ranges.${r}.CidrIpv6`)! }, p.get(`${at}.Ipv6Ranges.${r}.Description`) ?? ""]);
      for (let r = 1; p.has(`${at}.Groups.${r}.GroupId`); r++) {
        const groupId = this.group(p.get(`${at}.Groups.${r}.GroupId`)!).groupId;
        peers.push([{ groupId }, p.get(`${at}.Groups.${r}.Description`) ?? ""]);
      }
      if (peers.length === 0) throw new Ec2Fault(400, "MissingParameter", "Either 'ipRanges', 'ipv6Ranges', 'prefixListIds' or 'groups' must be specified.");
      for (const [peer, description] of peers) out.push({ id: `sgr-${hex(17)}`, egress, protocol, from: protocol === "icmp" ? (from ?? -1) : from, to: protocol === "icmp" ? (to ?? -1) : to, peer, description });
    }
    return out;
  }

  private authorize(p: URLSearchParams, egress: boolean): string {
    const g = this.group(p.get("GroupId") ?? "");
    const rules = this.permissions(p, egress);
    for (const r of rules) {
      if (g.rules.some((o) => same(o, r))) throw new Ec2Fault(400, "InvalidPermission.Duplicate", `the specified rule "peer: ${peerText(r)}, ${r.protocol.toUpperCase()}, from port: ${r.from ?? -1}, to port: ${r.to ?? -1}, ALLOW" already exists`);
    }
    g.rules.push(...rules);
    return `  <return>true</return>\n  <securityGroupRuleSet>\n${rules.map((r) => securityGroupRuleItem(g, r)).join("\n")}\n  </securityGroupRuleSet>`;
  }

  private revoke(p: URLSearchParams, egress: boolean): string {
    const g = this.group(p.get("GroupId") ?? "");
    const rules = this.permissions(p, egress);
    if (rules.some((r) => !g.rules.some((o) => same(o, r)))) throw new Ec2Fault(400, "InvalidPermission.NotFound", "The specified rule does not exist in this security group.");
    g.rules = g.rules.filter((o) => !rules.some((r) => same(o, r)));
    return "  <return>true</return>";
  }

  private modifyGroups(p: URLSearchParams): string {
    checkParams(p, ["InstanceId", "GroupId.1"], [/^InstanceId$/, /^GroupId\.\d+$/]);
    const instance = this.instance(p.get("InstanceId")!);
    instance.groupIds = listOf(p, "GroupId").map((id) => this.group(id).groupId);
    return "  <return>true</return>";
  }

  private instance(id: string): FakeInstance {
    const i = this.instances.get(id);
    if (!i) throw new Ec2Fault(400, "InvalidInstanceID.NotFound", `The instance ID '${id}' does not exist`);
    return i;
  }

  private address(allocationId: string): FakeAddress {
    const a = this.addresses.get(allocationId);
    if (!a) throw new Ec2Fault(400, "InvalidAllocationID.NotFound", `The allocation IDs '${allocationId}' do not exist`);
    return a;
  }

  private allocate(p: URLSearchParams, region: string): string {
    checkParams(p, [], [/^Domain$/, TAG_SPEC, /^NetworkBorderGroup$/]);
    if (p.get("Domain") !== "vpc") throw new Ec2Fault(400, "InvalidParameterValue", "EC2-Classic addresses are retired: Domain must be vpc");
    if (this.addresses.size >= this.maxAddresses) throw new Ec2Fault(400, "AddressLimitExceeded", "The maximum number of addresses has been reached.");
    const a: FakeAddress = { allocationId: `eipalloc-${hex(17)}`, publicIp: `198.51.100.${(++this.seq % 250) + 2}`, region, instanceId: null, associationId: null, privateIp: null, tags: specifiedTags(p, "elastic-ip") };
    this.addresses.set(a.allocationId, a);
    return `  <publicIp>${a.publicIp}</publicIp>\n  <domain>vpc</domain>\n  <allocationId>${a.allocationId}</allocationId>\n  <publicIpv4Pool>amazon</publicIpv4Pool>\n  <networkBorderGroup>${region}</networkBorderGroup>`;
  }

  private describeAddresses(p: URLSearchParams): string {
    checkParams(p, [], [/^AllocationId\.\d+$/, /^PublicIp\.\d+$/, FILTER]);
    const ids = listOf(p, "AllocationId");
    let selected = ids.length > 0 ? ids.map((id) => this.address(id)) : [...this.addresses.values()];
    const domain = filterValues(p, "domain");
    if (domain.length > 0 && !domain.includes("vpc")) selected = [];
    const instanceIds = filterValues(p, "instance-id");
    if (instanceIds.length > 0) selected = selected.filter((a) => a.instanceId && instanceIds.includes(a.instanceId));
    selected = selected.filter((a) => tagFiltersPass(p, a.tags));
    return `  <addressesSet>\n${selected.map(addressItem).join("\n")}\n  </addressesSet>`;
  }

  private associate(p: URLSearchParams): string {
    checkParams(p, ["AllocationId", "InstanceId"], [/^AllocationId$/, /^InstanceId$/, /^AllowReassociation$/, /^PrivateIpAddress$/]);
    const a = this.address(p.get("AllocationId")!);
    const i = this.instance(p.get("InstanceId")!);
    if (i.state !== "running" && i.state !== "stopped") throw new Ec2Fault(400, "IncorrectInstanceState", `The ${i.state} instance '${i.instanceId}' is not in a valid state for this operation.`);
    if (a.associationId && a.instanceId !== i.instanceId && p.get("AllowReassociation") !== "true") throw new Ec2Fault(400, "Resource.AlreadyAssociated", `resource ${a.allocationId} is already associated with associate-id ${a.associationId}`);
    if (a.instanceId !== i.instanceId) {
      // An instance has one Elastic IP on its primary address: a new one takes the old one's place.
      this.released(i.instanceId);
      Object.assign(a, { instanceId: i.instanceId, associationId: `eipassoc-${hex(17)}`, privateIp: i.privateIp });
    }
    return `  <return>true</return>\n  <associationId>${a.associationId}</associationId>`;
  }

  private disassociate(p: URLSearchParams): string {
    checkParams(p, ["AssociationId"], [/^AssociationId$/, /^PublicIp$/]);
    const id = p.get("AssociationId")!;
    const a = [...this.addresses.values()].find((x) => x.associationId === id);
    if (!a) throw new Ec2Fault(400, "InvalidAssociationID.NotFound", `The association ID '${id}' does not exist`);
    Object.assign(a, { instanceId: null, associationId: null, privateIp: null });
    return "  <return>true</return>";
  }

  private release(p: URLSearchParams): string {
    checkParams(p, ["AllocationId"], [/^AllocationId$/, /^NetworkBorderGroup$/]);
    const a = this.address(p.get("AllocationId")!);
    if (a.associationId) throw new Ec2Fault(400, "InvalidIPAddress.InUse", `The address with allocation id [${a.allocationId}] is in use.`);
    this.addresses.delete(a.allocationId);
    return "  <return>true</return>";
  }

  private keyPair(p: URLSearchParams, region: string, imported: boolean): string {
    if (imported) checkParams(p, ["KeyName", "PublicKeyMaterial"], [/^KeyName$/, /^PublicKeyMaterial$/, TAG_SPEC]);
    else checkParams(p, ["KeyName"], [/^KeyName$/, /^KeyType$/, /^KeyFormat$/, TAG_SPEC]);
    const name = p.get("KeyName")!;
    if (this.keyByName(name)) throw new Ec2Fault(400, "InvalidKeyPair.Duplicate", `The keypair '${name}' already exists.`);
    let publicKey: string;
    let privateKey = "";
    if (imported) {
      // The SDK sends the key text base64-encoded, as EC2's API wants the blob.
      publicKey = Buffer.from(p.get("PublicKeyMaterial")!, "base64").toString("utf8");
      if (typeof parsePublicKey(publicKey) === "string") throw new Ec2Fault(400, "InvalidKey.Format", "Key is not in valid OpenSSH public key format");
    } else {
      const type = p.get("KeyType") ?? "rsa";
      if (type !== "rsa" && type !== "ed25519") throw new Ec2Fault(400, "InvalidParameterValue", `Invalid value '${type}' for KeyType`);
      const made = generateKeyPair(type, name);
      [publicKey, privateKey] = [made.publicKey, made.privateKey];
    }
    const parsed = parsePublicKey(publicKey);
    if (typeof parsed === "string") throw new Error(parsed);
    // EC2's fingerprints: colon-separated MD5 for RSA, base64 SHA-256 for ed25519.
    const fingerprint = parsed.keyType === "ed25519" ? createHash("sha256").update(parsed.blob).digest("base64") : (createHash("md5").update(parsed.blob).digest("hex").match(/../g) ?? []).join(":");
    const k: FakeKeyPair = { keyPairId: `key-${hex(17)}`, keyName: name, keyType: parsed.keyType, fingerprint, publicKey: parsed.canonical, region, createTime: new Date(Math.floor(Date.now() / 1000) * 1000), tags: specifiedTags(p, "key-pair") };
    this.keyPairs.set(k.keyPairId, k);
    const material = imported ? "" : `\n  <keyMaterial>${privateKey}</keyMaterial>`;
    const tags = [...k.tags].map(([key, v]) => `    <item>\n      <key>${key}</key>\n      <value>${v}</value>\n    </item>`).join("\n");
    return `  <keyName>${k.keyName}</keyName>\n  <keyFingerprint>${k.fingerprint}</keyFingerprint>${material}\n  <keyPairId>${k.keyPairId}</keyPairId>\n  <tagSet>\n${tags}\n  </tagSet>`;
  }

  private describeKeyPairs(p: URLSearchParams): string {
    checkParams(p, [], [/^KeyName\.\d+$/, /^KeyPairId\.\d+$/, FILTER, /^IncludePublicKey$/]);
    const missing = (what: string): never => {
      throw new Ec2Fault(400, "InvalidKeyPair.NotFound", `The key pair '${what}' does not exist`);
    };
    let selected = [...this.keyPairs.values()];
    const names = listOf(p, "KeyName");
    if (names.length > 0) selected = names.map((n) => this.keyByName(n) ?? missing(n));
    const ids = listOf(p, "KeyPairId");
    if (ids.length > 0) selected = ids.map((id) => this.keyPairs.get(id) ?? missing(id));
    selected = selected.filter((k) => tagFiltersPass(p, k.tags));
    return `  <keySet>\n${selected.map((k) => keyPairItem(k, p.get("IncludePublicKey") === "true")).join("\n")}\n  </keySet>`;
  }

  private deleteKeyPair(p: URLSearchParams): string {
    checkParams(p, [], [/^KeyName$/, /^KeyPairId$/]);
    if (!p.has("KeyName") && !p.has("KeyPairId")) throw new Ec2Fault(400, "MissingParameter", "The request must contain the parameter KeyName or KeyPairId");
    // EC2 answers true for a key pair it does not have.
    const k = p.has("KeyPairId") ? this.keyPairs.get(p.get("KeyPairId")!) : this.keyByName(p.get("KeyName")!);
    if (k) this.keyPairs.delete(k.keyPairId);
    return `  <return>true</return>${k ? `\n  <keyPairId>${k.keyPairId}</keyPairId>` : ""}`;
  }

  private tags(p: URLSearchParams, create: boolean): string {
    checkParams(p, create ? ["ResourceId.1", "Tag.1.Key"] : ["ResourceId.1"], [/^ResourceId\.\d+$/, /^Tag\.\d+\.(Key|Value)$/]);
    for (const id of listOf(p, "ResourceId")) {
      const tags = this.tagsOf(id);
      for (let t = 1; p.has(`Tag.${t}.Key`); t++) {
        const key = p.get(`Tag.${t}.Key`)!;
        if (create) tags.set(key, p.get(`Tag.${t}.Value`) ?? "");
        else if (!p.has(`Tag.${t}.Value`) || tags.get(key) === p.get(`Tag.${t}.Value`)) tags.delete(key);
      }
    }
    return "  <return>true</return>";
  }

  private tagsOf(id: string): Map<string, string> {
    if (id.startsWith("i-")) return this.instance(id).tags;
    if (id.startsWith("sg-")) return this.group(id).tags;
    if (id.startsWith("eipalloc-")) return this.address(id).tags;
    const k = this.keyPairs.get(id);
    if (k) return k.tags;
    const other = this.otherTags?.(id);
    if (other) return other;
    throw new Ec2Fault(400, "InvalidID", `The ID '${id}' is not valid`);
  }
}

function peerText(r: FakeRule): string {
  return "cidr" in r.peer ? r.peer.cidr : "cidr6" in r.peer ? r.peer.cidr6 : r.peer.groupId;
}

function same(a: FakeRule, b: FakeRule): boolean {
  return a.egress === b.egress && a.protocol === b.protocol && a.from === b.from && a.to === b.to && peerText(a) === peerText(b);
}
