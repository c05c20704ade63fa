// The `aws` cloud driver: Amazon EC2 (or any endpoint speaking EC2's Query API) through the official SDK. Each driver
// call opens its own short session (src/clouds/aws/client.ts); this file says which EC2 calls answer which question.
import type { EC2Client, Instance, _InstanceType } from "@aws-sdk/client-ec2";
import { checkTags } from "../resources.js";
import { DriverError, type Capability, type CloudDriver, type DriverCallOptions, type DriverImage, type DriverRegion, type DriverTarget, type ServerObservation, type ServerRef } from "../driver.js";
import { awsAddresses } from "./addresses.js";
import { INSTANCE_TYPES, regionName } from "./catalog.js";
import { HOME_REGION, withEc2, type Ec2Sdk, type Ec2Session, type SendOptions } from "./client.js";
import { awsImages } from "./ami.js";
import { awsSnapshots, awsVolumes } from "./ebs.js";
import { awsFirewalls } from "./firewalls.js";
import { awsKeyPairs } from "./key-pairs.js";
import { observation, tagsFor, userData } from "./mapping.js";
import { awsBlobStore, DEFAULT_S3_ENDPOINT } from "./s3.js";
import { awsTags } from "./tags.js";

export interface AwsDriverOptions {
  /**
   * Object storage is S3, another service with its own endpoint and policy: it is reported in every region only when
   * the operator says the accounts of this deployment have it. Default false.
   */
  objectStorage?: boolean;
  /** Region calls that need no region go to (identity, the region list). Default us-east-1. */
  homeRegion?: string;
  /** The S3 endpoint of the blob store: a URL with {region}, or a fixed S3-compatible one. Default AWS's own. */
  s3Endpoint?: string;
}

/** Page size for paginated Describe calls (EC2 accepts 5–1000). */
const PAGE = 1000;
/** How many regions are asked for their zones at once. */
const ZONE_CONCURRENCY = 4;

export function createAwsDriver(options: AwsDriverOptions = {}): CloudDriver {
  const home = options.homeRegion ?? HOME_REGION;
  return {
    name: "aws",

    // The account number comes from the default security group's owner. STS GetCallerIdentity would answer too, but
    // it is another service with its own endpoint: EC2 alone keeps one endpoint per cloud and works with any
    // EC2-compatible endpoint. Any signed EC2 call proves the credentials.
    async testContext(target, call) {
      return withEc2(target, home, call, async (s) => {
        const byName = await s.send("DescribeSecurityGroups", (c, o, x) => c.send(new x.DescribeSecurityGroupsCommand({ Filters: [{ Name: "group-name", Values: ["default"] }] }), o));
        let owner = byName.SecurityGroups?.find((g) => g.OwnerId)?.OwnerId;
        if (!owner) {
          const any = await s.send("DescribeSecurityGroups", (c, o, x) => c.send(new x.DescribeSecurityGroupsCommand({ MaxResults: 5 }), o));
          owner = any.SecurityGroups?.find((g) => g.OwnerId)?.OwnerId;
        }
        if (!owner) throw new DriverError("CONFLICT", `the credentials work, but the account has no security group in ${home} to tell its account number from (create a default VPC)`);
        return { providerAccountId: owner };
      });
    },

    async listRegions(target, call) {
      const regions = await withEc2(target, home, call, async (s) => {
        const out = await s.send("DescribeRegions", (c, o, x) => c.send(new x.DescribeRegionsCommand({}), o));
        return (out.Regions ?? []).map((r) => r.RegionName).filter((r): r is string => !!r);
      });
      const result = await mapLimited(regions.sort(), ZONE_CONCURRENCY, async (id): Promise<DriverRegion> => {
        const dataCenters = await withEc2(target, id, call, async (s) => {
          const out = await s.send("DescribeAvailabilityZones", (c, o, x) =>
            c.send(new x.DescribeAvailabilityZonesCommand({ Filters: [{ Name: "zone-type", Values: ["availability-zone"] }, { Name: "region-name", Values: [id] }] }), o),
          );
          return (out.AvailabilityZones ?? []).filter((z) => (z.State ?? "available") === "available").map((z) => z.ZoneName ?? "").filter(Boolean).sort();
        });
        return { id, name: regionName(id), dataCenters };
      });
      return result;
    },

    // Each capability is a cheap read in the region. A call the IAM policy forbids (UnauthorizedOperation) or a
    // region the account has not opted into means "absent", not a failure; bad credentials still fail.
    async probeCapabilities(target, regionId, call) {
      return withEc2(target, regionId, call, async (s) => {
        const found: Capability[] = [];
        const compute = await probe(() => computeAllowed(s));
        if (compute) found.push("compute");
        if (await probe(() => s.send("DescribeVolumes", (c, o, x) => c.send(new x.DescribeVolumesCommand({ MaxResults: 5 }), o)))) found.push("block_storage");
        if (options.objectStorage) found.push("object_storage");
        if (await probe(() => s.send("DescribeVpcs", (c, o, x) => c.send(new x.DescribeVpcsCommand({ MaxResults: 5 }), o)))) found.push("networking");
        if (await probe(() => s.send("DescribeSecurityGroups", (c, o, x) => c.send(new x.DescribeSecurityGroupsCommand({ MaxResults: 5 }), o)))) found.push("firewalls");
        if (await probe(() => s.send("DescribeAddresses", (c, o, x) => c.send(new x.DescribeAddressesCommand({ Filters: [{ Name: "domain", Values: ["vpc"] }] }), o)))) found.push("static_addresses");
        if (await probe(() => s.send("DescribeKeyPairs", (c, o, x) => c.send(new x.DescribeKeyPairsCommand({}), o)))) found.push("key_pairs");
        return found;
      });
    },

    async listProducts(target, regionId, call) {
      const offered = await withEc2(target, regionId, call, async (s) => {
        try {
          const out = await s.send("DescribeInstanceTypeOfferings", (c, o, x) =>
            c.send(new x.DescribeInstanceTypeOfferingsCommand({ LocationType: "region", Filters: [{ Name: "instance-type", Values: INSTANCE_TYPES.map((p) => p.id) }] }), o),
          );
          return new Set((out.InstanceTypeOfferings ?? []).map((x) => x.InstanceType as string));
        } catch (err) {
          // The offering list only narrows the table: an endpoint or policy without it leaves the whole table.
          if (err instanceof DriverError && (err.code === "UNSUPPORTED" || err.providerCode === "UnauthorizedOperation")) return undefined;
          throw err;
        }
      });
      return INSTANCE_TYPES.filter((p) => !offered || offered.has(p.id)).map((p) => ({ ...p }));
    },

    async listImages(target, regionId, call) {
      return withEc2(target, regionId, call, async (s) => {
        const images: DriverImage[] = [];
        let token: string | undefined;
        do {
          const out = await s.send("DescribeImages", (c, o, x) => c.send(new x.DescribeImagesCommand({ Owners: ["self"], MaxResults: PAGE, ...(token ? { NextToken: token } : {}) }), o));
          for (const i of out.Images ?? []) {
            if (!i.ImageId || (i.State && i.State !== "available")) continue;
            images.push({ id: i.ImageId, name: i.Name ?? i.ImageId, platform: platformOf(i.PlatformDetails ?? i.Platform) });
          }
          token = out.NextToken || undefined;
        } while (token);
        return images.sort((a, b) => a.name.localeCompare(b.name));
      });
    },

    async launch(target, request, call) {
      const encoded = userData(request.bootstrap, request.userData);
      checkTags(request.tags ?? {});
      // The script is secret like the credentials: no error message may quote it, whole, line by line or encoded.
      const script = request.userData ?? "";
      const secrets = script ? [script, encoded ?? "", Buffer.from(script).toString("base64"), ...script.split("\n").filter((line) => line.trim().length >= 8)] : [];
      return withEc2(
        target,
        request.regionId,
        call,
        async (s) => {
          // ClientToken is EC2's own idempotency: a repeated RunInstances with it answers with the first launch.
          const out = await s.send("RunInstances", (c, o, x) =>
            c.send(
              new x.RunInstancesCommand({
                ImageId: request.imageId,
                InstanceType: request.productId as _InstanceType,
                MinCount: 1,
                MaxCount: 1,
                ClientToken: request.clientToken,
                ...(request.dataCenter ? { Placement: { AvailabilityZone: request.dataCenter } } : {}),
                ...(encoded ? { UserData: encoded } : {}),
                // None: the VPC's default security group, as EC2 does.
                ...(request.firewallIds && request.firewallIds.length > 0 ? { SecurityGroupIds: [...new Set(request.firewallIds)] } : {}),
                ...(request.keyPairName ? { KeyName: request.keyPairName } : {}),
                TagSpecifications: [{ ResourceType: "instance", Tags: tagsFor(request.name, request.tags ?? {}) }],
              }),
              o,
            ),
          );
          const instance = out.Instances?.[0];
          if (!instance?.InstanceId) throw new DriverError("INTERNAL", "AWS RunInstances answered without an instance", { retryable: true });
          return observation(instance, request.regionId);
        },
        secrets,
      );
    },

    start: (target, server, call) => act(target, server, call, "StartInstances", (c, o, x) => c.send(new x.StartInstancesCommand({ InstanceIds: [server.providerId] }), o)),
    stop: (target, server, call) => act(target, server, call, "StopInstances", (c, o, x) => c.send(new x.StopInstancesCommand({ InstanceIds: [server.providerId] }), o)),
    reboot: (target, server, call) => act(target, server, call, "RebootInstances", (c, o, x) => c.send(new x.RebootInstancesCommand({ InstanceIds: [server.providerId] }), o)),

    async terminate(target, server, call) {
      try {
        await act(target, server, call, "TerminateInstances", (c, o, x) => c.send(new x.TerminateInstancesCommand({ InstanceIds: [server.providerId] }), o));
      } catch (err) {
        // Gone already is what terminate wants.
        if (err instanceof DriverError && err.code === "NOT_FOUND") return;
        throw err;
      }
    },

    async getServer(target, server, call) {
      try {
        const found = await describe(target, server.regionId, call, { InstanceIds: [server.providerId] });
        return found.find((o) => o.providerId === server.providerId) ?? null;
      } catch (err) {
        if (err instanceof DriverError && err.code === "NOT_FOUND") return null;
        throw err;
      }
    },

    listServers: (target, regionId, call) => describe(target, regionId, call, {}),

    services: {
      firewalls: awsFirewalls(),
      addresses: awsAddresses(),
      keyPairs: awsKeyPairs(),
      tags: awsTags(),
      volumes: awsVolumes(),
      snapshots: awsSnapshots(),
      images: awsImages(),
      blobStore: awsBlobStore({ endpoint: options.s3Endpoint ?? DEFAULT_S3_ENDPOINT }),
    },
  };
}

async function act(target: DriverTarget, server: ServerRef, call: DriverCallOptions, operation: string, request: (client: EC2Client, options: SendOptions, sdk: Ec2Sdk) => Promise<unknown>): Promise<void> {
  await withEc2(target, server.regionId, call, (s) => s.send(operation, request));
}

/** DescribeInstances over every page; `InstanceIds` narrows it. */
async function describe(target: DriverTarget, regionId: string, call: DriverCallOptions, filter: { InstanceIds?: string[] }): Promise<ServerObservation[]> {
  return withEc2(target, regionId, call, async (s) => {
    const instances: Instance[] = [];
    let token: string | undefined;
    do {
      // EC2 refuses MaxResults together with InstanceIds.
      const page = filter.InstanceIds ? {} : { MaxResults: PAGE };
      const out = await s.send("DescribeInstances", (c, o, x) => c.send(new x.DescribeInstancesCommand({ ...filter, ...page, ...(token ? { NextToken: token } : {}) }), o));
      for (const r of out.Reservations ?? []) instances.push(...(r.Instances ?? []));
      token = out.NextToken || undefined;
    } while (token);
    return instances.filter((i) => i.InstanceId).map((i) => observation(i, regionId));
  });
}

/**
 * Compute is there when the account may run instances in the region: max-instances above zero and DescribeInstances
 * allowed. The dry run asks EC2 "would this be allowed" without listing anything (DryRunOperation means yes).
 */
async function computeAllowed(s: Ec2Session): Promise<boolean> {
  let max: string | undefined;
  const readable = await probe(async () => {
    const attrs = await s.send("DescribeAccountAttributes", (c, o, x) => c.send(new x.DescribeAccountAttributesCommand({}), o));
    max = attrs.AccountAttributes?.find((a) => a.AttributeName === "max-instances")?.AttributeValues?.[0]?.AttributeValue;
  });
  if (readable && max !== undefined && Number(max) <= 0) return false;
  try {
    await s.send("DescribeInstances", (c, o, x) => c.send(new x.DescribeInstancesCommand({ DryRun: true, MaxResults: 5 }), o));
  } catch (err) {
    if (err instanceof DriverError && err.providerCode === "DryRunOperation") return true;
    throw err;
  }
  return true;
}

/** true when the read succeeds; false when the policy forbids it or the region is not enabled for the account. */
async function probe(read: () => Promise<unknown>): Promise<boolean> {
  try {
    await read();
    return true;
  } catch (err) {
    if (err instanceof DriverError && (err.providerCode === "UnauthorizedOperation" || err.providerCode === "OptInRequired")) return false;
    throw err;
  }
}

function platformOf(details: string | undefined): string {
  const d = (details ?? "").toLowerCase();
  if (d.includes("windows")) return "windows";
  return "linux";
}

async function mapLimited<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
