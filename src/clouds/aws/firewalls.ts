// Firewalls on EC2: security groups of the region's default VPC. A rule is one IpPermission with one peer (a CIDR or
// another group); EC2's answers are read back the same way, one rule per peer. EC2 keeps no client token for a
// security group, so the driver tags it with one and looks for that tag before creating: a retried create finds the
// first one's group. A duplicate rule (InvalidPermission.Duplicate) and a missing one on revoke are success.
import type { IpPermission, SecurityGroup } from "@aws-sdk/client-ec2";
import { DriverError, type DriverCallOptions, type DriverTarget } from "../driver.js";
import { ruleViolations, type FirewallRule, type RuleProtocol } from "../firewall-rules.js";
import { CLIENT_TOKEN_TAG, checkTags, type FirewallObservation, type FirewallService, type FirewallSupport } from "../resources.js";
import { withEc2, type Ec2Session } from "./client.js";
import { tagsFor, tagValue, userTags } from "./mapping.js";

export const AWS_FIREWALL_SUPPORT: FirewallSupport = { directions: ["INGRESS", "EGRESS"], protocols: ["TCP", "UDP", "ICMP", "ALL"], firewallPeers: true, ipv6: true };

const PROTOCOL_IN: Readonly<Record<string, RuleProtocol>> = { tcp: "TCP", "6": "TCP", udp: "UDP", "17": "UDP", icmp: "ICMP", "1": "ICMP", "-1": "ALL" };
const PROTOCOL_OUT: Readonly<Record<RuleProtocol, string>> = { TCP: "tcp", UDP: "udp", ICMP: "icmp", ALL: "-1" };

/** A rule as EC2's IpPermission: ICMP is every type and code (-1), ALL has no ports. */
export function permissionOf(rule: FirewallRule): IpPermission {
  const description = rule.description ? { Description: rule.description } : {};
  const ports = rule.protocol === "ICMP" ? { FromPort: -1, ToPort: -1 } : rule.ports ? { FromPort: rule.ports.from, ToPort: rule.ports.to } : {};
  const peer =
    "firewallId" in rule.peer
      ? { UserIdGroupPairs: [{ GroupId: rule.peer.firewallId, ...description }] }
      : rule.peer.cidr.includes(":")
        ? { Ipv6Ranges: [{ CidrIpv6: rule.peer.cidr, ...description }] }
        : { IpRanges: [{ CidrIp: rule.peer.cidr, ...description }] };
  return { IpProtocol: PROTOCOL_OUT[rule.protocol], ...ports, ...peer };
}

/** EC2's permissions as rules, one per peer; protocols other than tcp/udp/icmp/all and prefix lists are left out. */
export function rulesOf(permissions: readonly IpPermission[] | undefined, direction: FirewallRule["direction"]): FirewallRule[] {
  const out: FirewallRule[] = [];
  for (const p of permissions ?? []) {
    const protocol = PROTOCOL_IN[p.IpProtocol ?? ""];
    if (!protocol) continue;
    const ports = (protocol === "TCP" || protocol === "UDP") && p.FromPort !== undefined && p.ToPort !== undefined ? { from: p.FromPort, to: p.ToPort } : null;
    const rule = (peer: FirewallRule["peer"], description: string | undefined): FirewallRule => ({ direction, protocol, ports, peer, ...(description ? { description } : {}) });
    for (const r of p.IpRanges ?? []) if (r.CidrIp) out.push(rule({ cidr: r.CidrIp }, r.Description));
    for (const r of p.Ipv6Ranges ?? []) if (r.CidrIpv6) out.push(rule({ cidr: r.CidrIpv6 }, r.Description));
    for (const g of p.UserIdGroupPairs ?? []) if (g.GroupId) out.push(rule({ firewallId: g.GroupId }, g.Description));
  }
  return out;
}

export function firewallOf(g: SecurityGroup, regionId: string): FirewallObservation {
  const details: Record<string, string> = {};
  if (g.VpcId) details.vpcId = g.VpcId;
  if (g.OwnerId) details.ownerId = g.OwnerId;
  if ((g.IpPermissions ?? []).some((p) => (p.PrefixListIds ?? []).length > 0)) details.prefixListRules = "present (not shown as rules)";
  return {
    providerId: g.GroupId ?? "",
    regionId,
    name: g.GroupName ?? "",
    state: "AVAILABLE",
    tags: userTags(g.Tags),
    createdAt: null,
    clientToken: tagValue(g.Tags, CLIENT_TOKEN_TAG) ?? null,
    details,
    description: g.Description ?? "",
    rules: [...rulesOf(g.IpPermissions, "INGRESS"), ...rulesOf(g.IpPermissionsEgress, "EGRESS")],
  };
}

/** DescribeSecurityGroups over every page. */
async function describe(s: Ec2Session, query: { GroupIds?: string[]; Filters?: Array<{ Name: string; Values: string[] }> }): Promise<SecurityGroup[]> {
  const groups: SecurityGroup[] = [];
  let token: string | undefined;
  do {
    // EC2 refuses MaxResults together with GroupIds.
    const page = query.GroupIds ? {} : { MaxResults: 1000 };
    const out = await s.send("DescribeSecurityGroups", (c, o, x) => c.send(new x.DescribeSecurityGroupsCommand({ ...query, ...page, ...(token ? { NextToken: token } : {}) }), o));
    groups.push(...(out.SecurityGroups ?? []));
    token = out.NextToken || undefined;
  } while (token);
  return groups;
}

async function byId(s: Ec2Session, id: string): Promise<SecurityGroup | null> {
  try {
    return (await describe(s, { GroupIds: [id] })).find((g) => g.GroupId === id) ?? null;
  } catch (err) {
    if (err instanceof DriverError && err.code === "NOT_FOUND") return null;
    throw err;
  }
}

function checkRule(rule: FirewallRule): void {
  const [bad] = ruleViolations(rule);
  if (bad) throw new DriverError("INVALID", `firewall rule ${bad.field}: ${bad.description}`);
}

export function awsFirewalls(): FirewallService {
  const withRegion = <T>(target: DriverTarget, regionId: string, call: DriverCallOptions, fn: (s: Ec2Session) => Promise<T>) => withEc2(target, regionId, call, fn);
  return {
    support: AWS_FIREWALL_SUPPORT,

    create: (target, request, call) =>
      withRegion(target, request.regionId, call, async (s) => {
        checkTags(request.tags);
        if (request.clientToken === "") throw new DriverError("INVALID", "a client token is required");
        const mine = await describe(s, { Filters: [{ Name: `tag:${CLIENT_TOKEN_TAG}`, Values: [request.clientToken] }] });
        if (mine[0]) return firewallOf(mine[0], request.regionId);
        let groupId: string | undefined;
        try {
          const out = await s.send("CreateSecurityGroup", (c, o, x) =>
            c.send(
              new x.CreateSecurityGroupCommand({
                GroupName: request.name,
                // EC2 requires a description.
                Description: request.description || request.name,
                TagSpecifications: [{ ResourceType: "security-group", Tags: tagsFor("", request.tags, request.clientToken) }],
              }),
              o,
            ),
          );
          groupId = out.GroupId;
        } catch (err) {
          if (err instanceof DriverError && err.providerCode === "InvalidGroup.Duplicate") throw new DriverError("CONFLICT", `a security group named "${request.name}" already exists in ${request.regionId}`, { cause: err, providerCode: err.providerCode });
          throw err;
        }
        const group = groupId ? await byId(s, groupId) : null;
        if (!group) throw new DriverError("INTERNAL", "AWS CreateSecurityGroup answered without a group that can be read back", { retryable: true });
        return firewallOf(group, request.regionId);
      }),

    get: (target, ref, call) =>
      withRegion(target, ref.regionId, call, async (s) => {
        const g = await byId(s, ref.providerId);
        return g ? firewallOf(g, ref.regionId) : null;
      }),

    list: (target, regionId, call) => withRegion(target, regionId, call, async (s) => (await describe(s, {})).map((g) => firewallOf(g, regionId))),

    delete: (target, ref, call) =>
      withRegion(target, ref.regionId, call, async (s) => {
        try {
          await s.send("DeleteSecurityGroup", (c, o, x) => c.send(new x.DeleteSecurityGroupCommand({ GroupId: ref.providerId }), o));
        } catch (err) {
          if (err instanceof DriverError && err.code === "NOT_FOUND") return;
          throw err;
        }
      }),

    authorize: (target, ref, rule, call) =>
      withRegion(target, ref.regionId, call, async (s) => {
        checkRule(rule);
        const request = { GroupId: ref.providerId, IpPermissions: [permissionOf(rule)] };
        try {
          if (rule.direction === "INGRESS") await s.send("AuthorizeSecurityGroupIngress", (c, o, x) => c.send(new x.AuthorizeSecurityGroupIngressCommand(request), o));
          else await s.send("AuthorizeSecurityGroupEgress", (c, o, x) => c.send(new x.AuthorizeSecurityGroupEgressCommand(request), o));
        } catch (err) {
          // The rule is there already: what authorize wants.
          if (err instanceof DriverError && err.providerCode === "InvalidPermission.Duplicate") return;
          throw err;
        }
      }),

    revoke: (target, ref, rule, call) =>
      withRegion(target, ref.regionId, call, async (s) => {
        checkRule(rule);
        const request = { GroupId: ref.providerId, IpPermissions: [permissionOf(rule)] };
        try {
          // EC2 answers a rule it does not have with InvalidPermission.NotFound, or (for some of several) lists it
          // among UnknownIpPermissions: gone either way.
          if (rule.direction === "INGRESS") await s.send("RevokeSecurityGroupIngress", (c, o, x) => c.send(new x.RevokeSecurityGroupIngressCommand(request), o));
          else await s.send("RevokeSecurityGroupEgress", (c, o, x) => c.send(new x.RevokeSecurityGroupEgressCommand(request), o));
        } catch (err) {
          if (err instanceof DriverError && err.providerCode === "InvalidPermission.NotFound") return;
          throw err;
        }
      }),

    setServerFirewalls: (target, server, firewallIds, call) =>
      withRegion(target, server.regionId, call, async (s) => {
        if (firewallIds.length === 0) throw new DriverError("INVALID", "a server is in at least one firewall");
        await s.send("ModifyInstanceAttribute", (c, o, x) => c.send(new x.ModifyInstanceAttributeCommand({ InstanceId: server.providerId, Groups: [...new Set(firewallIds)] }), o));
      }),
  };
}
