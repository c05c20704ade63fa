// EC2's shapes in the dispatcher's terms: instance states, an instance as a ServerObservation (addresses, client
// token, tags, security groups, non-secret details), and what the guest gets as user data: the bootstrap entries as a
// shell environment file, and with a user script, both as a MIME multipart that cloud-init runs part by part.
import { createHash } from "node:crypto";
import type { Instance, InstanceStateName, Tag } from "@aws-sdk/client-ec2";
import { DriverError, type ServerObservation, type ServerState } from "../driver.js";
import { CLIENT_TOKEN_TAG, RESERVED_TAG_PREFIX } from "../resources.js";

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

/** A resource's tags as the dispatcher shows them: the provider's, without its Name (shown as the name) or ours. */
export function userTags(tags: readonly Tag[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const t of tags ?? []) if (t.Key && t.Key !== "Name" && !t.Key.startsWith(RESERVED_TAG_PREFIX) && !t.Key.startsWith("aws:")) out[t.Key] = t.Value ?? "";
  return out;
}

export function tagValue(tags: readonly Tag[] | undefined, key: string): string | undefined {
  return tags?.find((t) => t.Key === key)?.Value;
}

/** EC2 tags for a create: Name, the user's, and the client token where EC2 keeps none itself. */
export function tagsFor(name: string, tags: Readonly<Record<string, string>>, clientToken?: string): Tag[] {
  const out: Tag[] = name ? [{ Key: "Name", Value: name }] : [];
  for (const [Key, Value] of Object.entries(tags)) if (Key !== "Name") out.push({ Key, Value });
  if (clientToken) out.push({ Key: CLIENT_TOKEN_TAG, Value: clientToken });
  return out;
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
    tags: userTags(instance.Tags),
    firewallIds: (instance.SecurityGroups ?? []).map((g) => g.GroupId ?? "").filter(Boolean),
    keyPairName: instance.KeyName ?? null,
  };
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** EC2's limit on user data before base64. */
export const MAX_USER_DATA = 16 * 1024;

/** The bootstrap entries as a POSIX shell environment file (`NAME='value'` lines, single quotes escaped). */
function envFile(bootstrap: Readonly<Record<string, string>>): string {
  const lines = ["# dispatcher bootstrap environment"];
  for (const name of Object.keys(bootstrap).sort()) {
    if (!ENV_NAME.test(name)) throw new DriverError("INVALID", `bootstrap entry "${name}" is not a valid environment variable name`);
    lines.push(`${name}='${(bootstrap[name] ?? "").replaceAll("'", `'\\''`)}'`);
  }
  return `${lines.join("\n")}\n`;
}

/**
 * What RunInstances gets as UserData (base64), or undefined for nothing:
 * - bootstrap entries only: the environment file itself, which the guest sources or reads from instance metadata;
 * - with a user script: a MIME multipart/mixed that cloud-init runs part by part — first a script that writes the
 *   environment file to /etc/dispatcher/bootstrap.env (0600), then the user's script (text/cloud-config when it starts
 *   with #cloud-config). The boundary is derived from the content, so a retried launch sends the same bytes.
 * Both are secret: never logged, never in an error.
 */
export function userData(bootstrap: Readonly<Record<string, string>>, script?: string): string | undefined {
  const env = Object.keys(bootstrap).length > 0 ? envFile(bootstrap) : "";
  let text: string;
  if (script === undefined || script === "") {
    if (env === "") return undefined;
    text = env;
  } else {
    const boundary = `==dispatcher-${createHash("sha256").update(env).update("\0").update(script).digest("hex").slice(0, 32)}==`;
    const part = (type: string, filename: string, body: string) =>
      `--${boundary}\r\nContent-Type: ${type}; charset="utf-8"\r\nMIME-Version: 1.0\r\nContent-Transfer-Encoding: 8bit\r\nContent-Disposition: attachment; filename="${filename}"\r\n\r\n${body}\r\n`;
    const parts: string[] = [];
    if (env !== "") {
      // The file's content goes in as base64: no value can end the script early or run as a command.
      const write = `#!/bin/sh\numask 077\nmkdir -p /etc/dispatcher\necho '${Buffer.from(env, "utf8").toString("base64")}' | base64 -d > /etc/dispatcher/bootstrap.env\n`;
      parts.push(part("text/x-shellscript", "00-dispatcher-bootstrap.sh", write));
    }
    parts.push(part(script.startsWith("#cloud-config") ? "text/cloud-config" : "text/x-shellscript", "10-user-data", script));
    text = `Content-Type: multipart/mixed; boundary="${boundary}"\r\nMIME-Version: 1.0\r\n\r\n${parts.join("")}--${boundary}--\r\n`;
  }
  if (Buffer.byteLength(text) > MAX_USER_DATA) throw new DriverError("INVALID", `the user data and bootstrap entries exceed EC2's ${MAX_USER_DATA}-byte user data limit`);
  return Buffer.from(text, "utf8").toString("base64");
}
