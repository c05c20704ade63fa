// EC2's shapes in the dispatcher's terms: instance states, an instance as a ServerObservation (addresses, client
// token, non-secret details), and the guest's bootstrap entries as a shell environment file in user data.
import type { Instance, InstanceStateName } from "@aws-sdk/client-ec2";
import { DriverError, type ServerObservation, type ServerState } from "../driver.js";

const STATES: Readonly<Record<InstanceStateName, ServerState>> = {
  pending: "PENDING",
  running: "RUNNING",
  stopping: "STOPPING",
  stopped: "STOPPED",
  "shutting-down": "TERMINATING",
  terminated: "TERMINATED",
};

export function serverState(name: string | undefined): ServerState {
  // An unknown state name is newer than this table; PENDING makes callers look again rather than conclude.
  return (name && STATES[name as InstanceStateName]) || "PENDING";
}

export function observation(instance: Instance, regionId: string): ServerObservation {
  const tags = new Map((instance.Tags ?? []).map((t) => [t.Key ?? "", t.Value ?? ""]));
  const privateIps = new Set<string>();
  const publicIps = new Set<string>();
  if (instance.PrivateIpAddress) privateIps.add(instance.PrivateIpAddress);
  if (instance.PublicIpAddress) publicIps.add(instance.PublicIpAddress);
  for (const ni of instance.NetworkInterfaces ?? []) {
    for (const p of ni.PrivateIpAddresses ?? []) {
      if (p.PrivateIpAddress) privateIps.add(p.PrivateIpAddress);
      if (p.Association?.PublicIp) publicIps.add(p.Association.PublicIp);
    }
    if (ni.Association?.PublicIp) publicIps.add(ni.Association.PublicIp);
    for (const v6 of ni.Ipv6Addresses ?? []) if (v6.Ipv6Address) publicIps.add(v6.Ipv6Address);
  }
  const details: Record<string, string> = {};
  const put = (key: string, value: string | undefined) => {
    if (value) details[key] = value;
  };
  put("vpcId", instance.VpcId);
  put("subnetId", instance.SubnetId);
  put("architecture", instance.Architecture);
  put("platform", instance.PlatformDetails ?? instance.Platform);
  put("keyName", instance.KeyName);
  put("privateDnsName", instance.PrivateDnsName);
  put("publicDnsName", instance.PublicDnsName);
  put("stateReason", instance.StateReason?.Message ?? instance.StateTransitionReason);
  put("securityGroups", (instance.SecurityGroups ?? []).map((g) => g.GroupId).filter(Boolean).join(","));
  return {
    providerId: instance.InstanceId ?? "",
    name: tags.get("Name") ?? "",
    regionId,
    dataCenter: instance.Placement?.AvailabilityZone ?? "",
    productId: instance.InstanceType ?? "",
    imageId: instance.ImageId ?? "",
    state: serverState(instance.State?.Name),
    addresses: { private: [...privateIps], public: [...publicIps] },
    launchedAt: instance.LaunchTime ?? null,
    clientToken: instance.ClientToken || null,
    details,
  };
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** EC2's limit on user data before base64. */
const MAX_USER_DATA = 16 * 1024;

/**
 * The bootstrap entries as a POSIX shell environment file (`NAME='value'` lines, single quotes escaped), base64
 * encoded as RunInstances wants it. The guest sources it or reads it from its instance metadata.
 */
export function userData(bootstrap: Readonly<Record<string, string>>): string | undefined {
  const names = Object.keys(bootstrap).sort();
  if (names.length === 0) return undefined;
  const lines = ["# dispatcher bootstrap environment"];
  for (const name of names) {
    if (!ENV_NAME.test(name)) throw new DriverError("INVALID", `bootstrap entry "${name}" is not a valid environment variable name`);
    lines.push(`${name}='${(bootstrap[name] ?? "").replaceAll("'", `'\\''`)}'`);
  }
  const text = `${lines.join("\n")}\n`;
  if (Buffer.byteLength(text) > MAX_USER_DATA) throw new DriverError("INVALID", `the bootstrap entries exceed EC2's ${MAX_USER_DATA}-byte user data limit`);
  return Buffer.from(text, "utf8").toString("base64");
}
