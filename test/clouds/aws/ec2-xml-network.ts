// EC2 Query API response pieces for security groups, Elastic IPs and key pairs (2016-11-15), shaped after the
// examples of AWS's EC2 API reference: <securityGroupInfo>/<ipPermissions> with <groups>, <ipRanges>, <ipv6Ranges>;
// <securityGroupRuleSet> answers to Authorize*; <addressesSet>; <keySet>; <tagSet> items of <key>/<value>.
import { esc, OWNER_ID } from "./ec2-xml.js";

export interface FakeRule {
  id: string;
  egress: boolean;
  /** tcp, udp, icmp or -1 */
  protocol: string;
  from: number | null;
  to: number | null;
  peer: { cidr: string } | { cidr6: string } | { groupId: string };
  description: string;
}

export interface FakeGroup {
  groupId: string;
  groupName: string;
  description: string;
  vpcId: string;
  region: string;
  rules: FakeRule[];
  tags: Map<string, string>;
}

export interface FakeAddress {
  allocationId: string;
  publicIp: string;
  region: string;
  instanceId: string | null;
  associationId: string | null;
  privateIp: string | null;
  tags: Map<string, string>;
}

export interface FakeKeyPair {
  keyPairId: string;
  keyName: string;
  keyType: string;
  fingerprint: string;
  publicKey: string;
  region: string;
  createTime: Date;
  tags: Map<string, string>;
}

export function tagSet(tags: ReadonlyMap<string, string>, indent = "      "): string {
  if (tags.size === 0) return `${indent}<tagSet/>`;
  const items = [...tags].map(([k, v]) => `${indent}  <item>\n${indent}    <key>${esc(k)}</key>\n${indent}    <value>${esc(v)}</value>\n${indent}  </item>`);
  return `${indent}<tagSet>\n${items.join("\n")}\n${indent}</tagSet>`;
}

function permissionItem(r: FakeRule): string {
  const ports = r.from !== null ? `\n          <fromPort>${r.from}</fromPort>\n          <toPort>${r.to}</toPort>` : "";
  const description = r.description ? `\n                <description>${esc(r.description)}</description>` : "";
  const groups = "groupId" in r.peer ? `<groups>\n              <item>\n                <userId>${OWNER_ID}</userId>\n                <groupId>${r.peer.groupId}</groupId>${description}\n              </item>\n            </groups>` : "<groups/>";
  const v4 = "cidr" in r.peer ? `<ipRanges>\n              <item>\n                <cidrIp>${esc(r.peer.cidr)}</cidrIp>${description}\n              </item>\n            </ipRanges>` : "<ipRanges/>";
  const v6 = "cidr6" in r.peer ? `<ipv6Ranges>\n              <item>\n                <cidrIpv6>${esc(r.peer.cidr6)}</cidrIpv6>${description}\n              </item>\n            </ipv6Ranges>` : "<ipv6Ranges/>";
  return `        <item>
          <ipProtocol>${esc(r.protocol)}</ipProtocol>${ports}
            ${groups}
            ${v4}
            ${v6}
            <prefixListIds/>
        </item>`;
}

export function securityGroupItem(g: FakeGroup): string {
  const list = (egress: boolean, element: string) => {
    const rules = g.rules.filter((r) => r.egress === egress);
    return rules.length === 0 ? `      <${element}/>` : `      <${element}>\n${rules.map(permissionItem).join("\n")}\n      </${element}>`;
  };
  return `    <item>
      <ownerId>${OWNER_ID}</ownerId>
      <groupId>${g.groupId}</groupId>
      <groupName>${esc(g.groupName)}</groupName>
      <groupDescription>${esc(g.description)}</groupDescription>
      <vpcId>${g.vpcId}</vpcId>
${list(false, "ipPermissions")}
${list(true, "ipPermissionsEgress")}
${tagSet(g.tags)}
      <securityGroupArn>arn:aws:ec2:${g.region}:${OWNER_ID}:security-group/${g.groupId}</securityGroupArn>
    </item>`;
}

/** One item of the <securityGroupRuleSet> that AuthorizeSecurityGroupIngress/Egress answer with. */
export function securityGroupRuleItem(g: FakeGroup, r: FakeRule): string {
  const ports = r.from !== null ? `\n      <fromPort>${r.from}</fromPort>\n      <toPort>${r.to}</toPort>` : "\n      <fromPort>-1</fromPort>\n      <toPort>-1</toPort>";
  const peer = "cidr" in r.peer ? `<cidrIpv4>${esc(r.peer.cidr)}</cidrIpv4>` : "cidr6" in r.peer ? `<cidrIpv6>${esc(r.peer.cidr6)}</cidrIpv6>` : `<referencedGroupInfo>\n        <groupId>${r.peer.groupId}</groupId>\n        <userId>${OWNER_ID}</userId>\n      </referencedGroupInfo>`;
  return `    <item>
      <securityGroupRuleId>${r.id}</securityGroupRuleId>
      <groupId>${g.groupId}</groupId>
      <groupOwnerId>${OWNER_ID}</groupOwnerId>
      <isEgress>${r.egress}</isEgress>
      <ipProtocol>${esc(r.protocol)}</ipProtocol>${ports}
      ${peer}${r.description ? `\n      <description>${esc(r.description)}</description>` : ""}
      <tagSet/>
    </item>`;
}

export function addressItem(a: FakeAddress): string {
  const association = a.associationId
    ? `
      <instanceId>${a.instanceId}</instanceId>
      <associationId>${a.associationId}</associationId>
      <networkInterfaceId>eni-${(a.instanceId ?? "").slice(2, 10)}</networkInterfaceId>
      <networkInterfaceOwnerId>${OWNER_ID}</networkInterfaceOwnerId>
      <privateIpAddress>${a.privateIp}</privateIpAddress>`
    : "";
  return `    <item>
      <publicIp>${a.publicIp}</publicIp>
      <allocationId>${a.allocationId}</allocationId>
      <domain>vpc</domain>${association}
${tagSet(a.tags)}
      <publicIpv4Pool>amazon</publicIpv4Pool>
      <networkBorderGroup>${a.region}</networkBorderGroup>
    </item>`;
}

export function keyPairItem(k: FakeKeyPair, includePublicKey: boolean): string {
  return `    <item>
      <keyPairId>${k.keyPairId}</keyPairId>
      <keyFingerprint>${esc(k.fingerprint)}</keyFingerprint>
      <keyName>${esc(k.keyName)}</keyName>
      <keyType>${k.keyType}</keyType>
${tagSet(k.tags)}${includePublicKey ? `\n      <publicKey>${esc(k.publicKey)}</publicKey>` : ""}
      <createTime>${k.createTime.toISOString()}</createTime>
    </item>`;
}
