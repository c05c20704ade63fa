// EC2 Query API response bodies in the 2016-11-15 namespace, shaped after the examples of AWS's EC2 API reference
// (element names, nesting, item lists and the <Response><Errors> error document), with values filled in by the fake.
export const NS = "http://ec2.amazonaws.com/doc/2016-11-15/";
export const OWNER_ID = "123456789012";

export const esc = (v: string | number | boolean): string =>
  String(v).replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll('"', "&quot;").replaceAll("'", "&apos;");

export function envelope(action: string, requestId: string, inner: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${action}Response xmlns="${NS}">\n  <requestId>${requestId}</requestId>\n${inner}\n</${action}Response>`;
}

export function errorDocument(code: string, message: string, requestId: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>${esc(code)}</Code><Message>${esc(message)}</Message></Error></Errors><RequestID>${requestId}</RequestID></Response>`;
}

export const STATE_CODES: Readonly<Record<string, number>> = { pending: 0, running: 16, "shutting-down": 32, terminated: 48, stopping: 64, stopped: 80 };

export interface FakeInstance {
  instanceId: string;
  reservationId: string;
  imageId: string;
  instanceType: string;
  availabilityZone: string;
  state: string;
  launchTime: Date;
  clientToken: string;
  /** Every tag, Name included. */
  tags: Map<string, string>;
  groupIds: string[];
  keyName: string | null;
  userData: string;
  privateIp: string;
  /** The address EC2 gave it while running (an Elastic IP takes its place). */
  publicIp: string | null;
}

/** An instance item; `groupName` names its security groups, `elasticIp` is the Elastic IP associated with it. */
export function instanceItem(i: FakeInstance, groupName: (id: string) => string = () => "", elasticIp: string | null = null): string {
  const region = i.availabilityZone.replace(/[a-z]$/, "");
  i = { ...i, publicIp: elasticIp ?? i.publicIp };
  const privateDns = `ip-${i.privateIp.replaceAll(".", "-")}.${region}.compute.internal`;
  const publicAssoc = i.publicIp ? `<association><publicIp>${i.publicIp}</publicIp><publicDnsName>ec2-${i.publicIp.replaceAll(".", "-")}.compute-1.amazonaws.com</publicDnsName><ipOwnerId>amazon</ipOwnerId></association>` : "";
  return `      <item>
        <instanceId>${i.instanceId}</instanceId>
        <imageId>${esc(i.imageId)}</imageId>
        <instanceState>
          <code>${STATE_CODES[i.state] ?? 0}</code>
          <name>${i.state}</name>
        </instanceState>
        <privateDnsName>${privateDns}</privateDnsName>
        <dnsName>${i.publicIp ? `ec2-${i.publicIp.replaceAll(".", "-")}.compute-1.amazonaws.com` : ""}</dnsName>
        <reason/>${i.keyName ? `
        <keyName>${esc(i.keyName)}</keyName>` : ""}
        <amiLaunchIndex>0</amiLaunchIndex>
        <productCodes/>
        <instanceType>${esc(i.instanceType)}</instanceType>
        <launchTime>${i.launchTime.toISOString()}</launchTime>
        <placement>
          <availabilityZone>${esc(i.availabilityZone)}</availabilityZone>
          <groupName/>
          <tenancy>default</tenancy>
        </placement>
        <monitoring>
          <state>disabled</state>
        </monitoring>
        <subnetId>subnet-56f5f633</subnetId>
        <vpcId>vpc-11112222</vpcId>
        <privateIpAddress>${i.privateIp}</privateIpAddress>
        ${i.publicIp ? `<ipAddress>${i.publicIp}</ipAddress>` : ""}
        <sourceDestCheck>true</sourceDestCheck>
        <groupSet>
${i.groupIds.map((id) => `          <item>\n            <groupId>${id}</groupId>\n            <groupName>${esc(groupName(id))}</groupName>\n          </item>`).join("\n")}
        </groupSet>
        <stateReason>
          <code>${i.state}</code>
          <message>${i.state}</message>
        </stateReason>
        <architecture>x86_64</architecture>
        <rootDeviceType>ebs</rootDeviceType>
        <rootDeviceName>/dev/xvda</rootDeviceName>
        <blockDeviceMapping/>
        <virtualizationType>hvm</virtualizationType>
        <clientToken>${esc(i.clientToken)}</clientToken>
        <tagSet>
${[...i.tags].map(([k, v]) => `          <item>\n            <key>${esc(k)}</key>\n            <value>${esc(v)}</value>\n          </item>`).join("\n")}
        </tagSet>
        <hypervisor>xen</hypervisor>
        <networkInterfaceSet>
          <item>
            <networkInterfaceId>eni-${i.instanceId.slice(2, 10)}</networkInterfaceId>
            <subnetId>subnet-56f5f633</subnetId>
            <vpcId>vpc-11112222</vpcId>
            <description/>
            <ownerId>${OWNER_ID}</ownerId>
            <status>in-use</status>
            <macAddress>02:dd:2c:5e:01:69</macAddress>
            <privateIpAddress>${i.privateIp}</privateIpAddress>
            <privateDnsName>${privateDns}</privateDnsName>
            <sourceDestCheck>true</sourceDestCheck>
            ${publicAssoc}
            <privateIpAddressesSet>
              <item>
                <privateIpAddress>${i.privateIp}</privateIpAddress>
                <privateDnsName>${privateDns}</privateDnsName>
                <primary>true</primary>
                ${publicAssoc}
              </item>
            </privateIpAddressesSet>
          </item>
        </networkInterfaceSet>
        <ebsOptimized>false</ebsOptimized>
      </item>`;
}

export function stateChangeItem(id: string, previous: string, current: string): string {
  return `    <item>
      <instanceId>${id}</instanceId>
      <currentState>
        <code>${STATE_CODES[current] ?? 0}</code>
        <name>${current}</name>
      </currentState>
      <previousState>
        <code>${STATE_CODES[previous] ?? 0}</code>
        <name>${previous}</name>
      </previousState>
    </item>`;
}

export const regionItem = (name: string) => `    <item>
      <regionName>${esc(name)}</regionName>
      <regionEndpoint>ec2.${esc(name)}.amazonaws.com</regionEndpoint>
      <optInStatus>opt-in-not-required</optInStatus>
    </item>`;

export const zoneItem = (region: string, letter: string, n: number) => `    <item>
      <zoneName>${region}${letter}</zoneName>
      <zoneState>available</zoneState>
      <regionName>${region}</regionName>
      <messageSet/>
      <zoneId>${region.replaceAll("-", "").slice(0, 4)}-az${n}</zoneId>
      <zoneType>availability-zone</zoneType>
      <optInStatus>opt-in-not-required</optInStatus>
      <groupName>${region}</groupName>
      <networkBorderGroup>${region}</networkBorderGroup>
    </item>`;

export const VPCS = `  <vpcSet>
    <item>
      <vpcId>vpc-1a2b3c4d</vpcId>
      <state>available</state>
      <cidrBlock>10.0.0.0/23</cidrBlock>
      <cidrBlockAssociationSet>
        <item>
          <cidrBlock>10.0.0.0/23</cidrBlock>
          <associationId>vpc-cidr-assoc-1a2b3c4d</associationId>
          <cidrBlockState>
            <state>associated</state>
          </cidrBlockState>
        </item>
      </cidrBlockAssociationSet>
      <dhcpOptionsId>dopt-1a2b3c4d</dhcpOptionsId>
      <instanceTenancy>default</instanceTenancy>
      <isDefault>true</isDefault>
      <ownerId>${OWNER_ID}</ownerId>
    </item>
  </vpcSet>`;

export const accountAttributes = (maxInstances: number) => `  <accountAttributeSet>
    <item>
      <attributeName>vpc-max-security-groups-per-interface</attributeName>
      <attributeValueSet>
        <item>
          <attributeValue>5</attributeValue>
        </item>
      </attributeValueSet>
    </item>
    <item>
      <attributeName>max-instances</attributeName>
      <attributeValueSet>
        <item>
          <attributeValue>${maxInstances}</attributeValue>
        </item>
      </attributeValueSet>
    </item>
    <item>
      <attributeName>supported-platforms</attributeName>
      <attributeValueSet>
        <item>
          <attributeValue>VPC</attributeValue>
        </item>
      </attributeValueSet>
    </item>
    <item>
      <attributeName>default-vpc</attributeName>
      <attributeValueSet>
        <item>
          <attributeValue>vpc-1a2b3c4d</attributeValue>
        </item>
      </attributeValueSet>
    </item>
  </accountAttributeSet>`;

export const offeringItem = (type: string, region: string) => `    <item>
      <instanceType>${esc(type)}</instanceType>
      <locationType>region</locationType>
      <location>${esc(region)}</location>
    </item>`;
