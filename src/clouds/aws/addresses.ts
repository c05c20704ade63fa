// Static addresses on EC2: Elastic IPs of the VPC domain. EC2 keeps no client token for an allocation, so the driver
// tags it with one and looks for that tag before allocating: a retried allocate finds the first one's address instead
// of paying for a second. Associating checks first (the same instance again is success; another one is CONFLICT,
// never a silent move); disassociating or releasing what is gone is success.
import type { Address } from "@aws-sdk/client-ec2";
import { DriverError, type DriverCallOptions, type DriverTarget, type ServerRef } from "../driver.js";
import { CLIENT_TOKEN_TAG, checkTags, type AddressObservation, type AddressService } from "../resources.js";
import { withEc2, type Ec2Session } from "./client.js";
import { tagsFor, tagValue, userTags } from "./mapping.js";

export function addressOf(a: Address, regionId: string): AddressObservation {
  const details: Record<string, string> = {};
  const put = (key: string, value: string | undefined) => {
    if (value) details[key] = value;
  };
  put("associationId", a.AssociationId);
  put("domain", a.Domain);
  put("networkInterfaceId", a.NetworkInterfaceId);
  put("privateIpAddress", a.PrivateIpAddress);
  put("networkBorderGroup", a.NetworkBorderGroup);
  return {
    providerId: a.AllocationId ?? "",
    regionId,
    name: tagValue(a.Tags, "Name") ?? "",
    state: a.AssociationId ? "ASSOCIATED" : "ALLOCATED",
    tags: userTags(a.Tags),
    createdAt: null,
    clientToken: tagValue(a.Tags, CLIENT_TOKEN_TAG) ?? null,
    details,
    ip: a.PublicIp ?? "",
    serverProviderId: a.AssociationId ? (a.InstanceId ?? null) : null,
  };
}

async function describe(s: Ec2Session, query: { AllocationIds?: string[]; Filters?: Array<{ Name: string; Values: string[] }> }): Promise<Address[]> {
  const out = await s.send("DescribeAddresses", (c, o, x) => c.send(new x.DescribeAddressesCommand(query), o));
  return out.Addresses ?? [];
}

async function byId(s: Ec2Session, id: string): Promise<Address | null> {
  try {
    return (await describe(s, { AllocationIds: [id] })).find((a) => a.AllocationId === id) ?? null;
  } catch (err) {
    if (err instanceof DriverError && err.code === "NOT_FOUND") return null;
    throw err;
  }
}

function found(a: Address | null, ref: ServerRef): Address {
  if (!a) throw new DriverError("NOT_FOUND", `AWS has no Elastic IP allocation ${ref.providerId.slice(0, 64)} in ${ref.regionId}`);
  return a;
}

export function awsAddresses(): AddressService {
  const inRegion = <T>(target: DriverTarget, regionId: string, call: DriverCallOptions, fn: (s: Ec2Session) => Promise<T>) => withEc2(target, regionId, call, fn);
  return {
    allocate: (target, request, call) =>
      inRegion(target, request.regionId, call, async (s) => {
        checkTags(request.tags);
        if (request.clientToken === "") throw new DriverError("INVALID", "a client token is required");
        const mine = await describe(s, { Filters: [{ Name: `tag:${CLIENT_TOKEN_TAG}`, Values: [request.clientToken] }] });
        if (mine[0]) return addressOf(mine[0], request.regionId);
        const out = await s.send("AllocateAddress", (c, o, x) =>
          c.send(new x.AllocateAddressCommand({ Domain: "vpc", TagSpecifications: [{ ResourceType: "elastic-ip", Tags: tagsFor(request.name, request.tags, request.clientToken) }] }), o),
        );
        if (!out.AllocationId) throw new DriverError("INTERNAL", "AWS AllocateAddress answered without an allocation id", { retryable: true });
        return addressOf({ ...out, Tags: tagsFor(request.name, request.tags, request.clientToken) }, request.regionId);
      }),

    get: (target, ref, call) =>
      inRegion(target, ref.regionId, call, async (s) => {
        const a = await byId(s, ref.providerId);
        return a ? addressOf(a, ref.regionId) : null;
      }),

    list: (target, regionId, call) => inRegion(target, regionId, call, async (s) => (await describe(s, { Filters: [{ Name: "domain", Values: ["vpc"] }] })).map((a) => addressOf(a, regionId))),

    associate: (target, ref, server, call) =>
      inRegion(target, ref.regionId, call, async (s) => {
        const a = found(await byId(s, ref.providerId), ref);
        if (a.AssociationId && a.InstanceId === server.providerId) return;
        if (a.AssociationId) throw new DriverError("CONFLICT", `Elastic IP ${a.PublicIp ?? ref.providerId} is associated with ${a.InstanceId ?? a.NetworkInterfaceId ?? "another resource"}: disassociate it first`);
        await s.send("AssociateAddress", (c, o, x) => c.send(new x.AssociateAddressCommand({ AllocationId: ref.providerId, InstanceId: server.providerId, AllowReassociation: false }), o));
      }),

    disassociate: (target, ref, call) =>
      inRegion(target, ref.regionId, call, async (s) => {
        const a = found(await byId(s, ref.providerId), ref);
        if (!a.AssociationId) return;
        try {
          await s.send("DisassociateAddress", (c, o, x) => c.send(new x.DisassociateAddressCommand({ AssociationId: a.AssociationId }), o));
        } catch (err) {
          if (err instanceof DriverError && err.code === "NOT_FOUND") return;
          throw err;
        }
      }),

    delete: (target, ref, call) =>
      inRegion(target, ref.regionId, call, async (s) => {
        try {
          await s.send("ReleaseAddress", (c, o, x) => c.send(new x.ReleaseAddressCommand({ AllocationId: ref.providerId }), o));
        } catch (err) {
          if (err instanceof DriverError && err.code === "NOT_FOUND") return;
          throw err;
        }
      }),
  };
}
