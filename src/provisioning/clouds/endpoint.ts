// SSRF guard for user-supplied cloud endpoints: a scheme allow-list, no credentials in the URL, and no link-local or
// cloud metadata address, checked on the literal host and on every address the host name resolves to.
import { lookup } from "node:dns/promises";
import { BlockList, isIP } from "node:net";
import { InvalidArgumentError } from "../../errors.js";

export interface EndpointPolicy {
  /** Accept http:// as well as https:// (provisioning.allowInsecureEndpoints). */
  allowInsecure: boolean;
  /** Accept link-local and cloud metadata addresses (provisioning.allowLinkLocalEndpoints). */
  allowLinkLocal: boolean;
  /** Every address a host name resolves to; defaults to the system resolver. Tests inject one. */
  resolve?: (host: string) => Promise<string[]>;
}

const MAX_ENDPOINT = 2048;
/** Host names of cloud metadata services (lower case, without a trailing dot). */
const METADATA_HOSTS = new Set(["metadata.google.internal", "metadata.goog", "metadata"]);

function forbiddenAddresses(): BlockList {
  const list = new BlockList();
  list.addSubnet("169.254.0.0", 16, "ipv4"); // link-local, includes 169.254.169.254 (AWS, GCP, Azure metadata)
  list.addSubnet("fe80::", 10, "ipv6"); // link-local
  list.addAddress("fd00:ec2::254", "ipv6"); // AWS metadata over IPv6
  list.addSubnet("::ffff:169.254.0.0", 112, "ipv6"); // IPv4-mapped link-local
  return list;
}

const FORBIDDEN = forbiddenAddresses();

export async function systemResolve(host: string): Promise<string[]> {
  const answers = await lookup(host, { all: true, verbatim: true });
  return answers.map((a) => a.address);
}

/** Whether an IP literal is link-local or a cloud metadata address. */
export function isForbiddenAddress(address: string): boolean {
  const bare = address.replace(/^\[|\]$/g, "").replace(/%.*$/, "");
  const family = isIP(bare);
  if (family === 0) return false;
  return FORBIDDEN.check(bare, family === 4 ? "ipv4" : "ipv6");
}

/**
 * The endpoint, normalised (WHATWG URL serialisation), when the policy accepts it; otherwise InvalidArgumentError
 * naming `field`. Resolution failures are violations too: an endpoint that does not resolve cannot be checked.
 */
export async function checkEndpoint(field: string, value: string, policy: EndpointPolicy): Promise<string> {
  const bad = (description: string): InvalidArgumentError => InvalidArgumentError.field(field, description);
  if (value.length === 0) throw bad("is required");
  if (value.length > MAX_ENDPOINT) throw bad(`must be at most ${MAX_ENDPOINT} characters`);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw bad("must be an absolute URL such as https://api.example.com");
  }
  const schemes = policy.allowInsecure ? ["https:", "http:"] : ["https:"];
  if (!schemes.includes(url.protocol)) throw bad(`scheme must be ${schemes.map((s) => s.slice(0, -1)).join(" or ")}`);
  if (url.username !== "" || url.password !== "") throw bad("must not carry credentials (user:password@)");
  const host = url.hostname.toLowerCase().replace(/\.$/, "");
  if (host === "") throw bad("must name a host");
  if (policy.allowLinkLocal) return url.toString();
  if (METADATA_HOSTS.has(host)) throw bad("must not point at a cloud metadata service");
  const literal = host.replace(/^\[|\]$/g, "");
  if (isIP(literal) !== 0) {
    if (isForbiddenAddress(literal)) throw bad("must not point at a link-local or cloud metadata address");
    return url.toString();
  }
  let addresses: string[];
  try {
    addresses = await (policy.resolve ?? systemResolve)(host);
  } catch {
    throw bad(`host ${JSON.stringify(host)} does not resolve`);
  }
  if (addresses.length === 0) throw bad(`host ${JSON.stringify(host)} does not resolve`);
  if (addresses.some(isForbiddenAddress)) throw bad("resolves to a link-local or cloud metadata address");
  return url.toString();
}

/** The endpoint of the embedded local cloud, which has nothing to reach over a network. */
export const LOCAL_CLOUD_ENDPOINT = "local://";

/** checkEndpoint for a cloud of `driver`: the `local` driver's endpoint may also be exactly local://, nothing else may. */
export async function checkCloudEndpoint(field: string, value: string, driver: string, policy: EndpointPolicy): Promise<string> {
  if (driver === "local" && value === LOCAL_CLOUD_ENDPOINT) return value;
  return checkEndpoint(field, value, policy);
}
