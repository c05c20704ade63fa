// One EC2 conversation per driver call: the endpoint for the region, a client built from the call's credentials and
// dropped when the call ends (nothing secret outlives it), one attempt per request so the job system owns retries and
// backoff, and every request bound to the caller's signal and deadline. Failures leave as classified DriverErrors.
import type * as Ec2Module from "@aws-sdk/client-ec2";
import type { EC2Client } from "@aws-sdk/client-ec2";
import { callSignal, DriverError, type DriverCallOptions, type DriverTarget } from "../driver.js";
import { classifyAwsError } from "./errors.js";

/** The region that answers account-wide questions (identity, the region list) when no region is named. */
export const HOME_REGION = "us-east-1";
const DEFAULT_ENDPOINT = "https://ec2.{region}.amazonaws.com";
const MAX_CONNECT_MS = 10_000;

/** What each request passes to EC2Client.send: the call's signal and what is left of its deadline. */
export interface SendOptions {
  abortSignal: AbortSignal;
  requestTimeout: number;
}

/** The SDK module: its command classes. */
export type Ec2Sdk = typeof Ec2Module;

export interface Ec2Session {
  readonly region: string;
  /** Makes one request, e.g. `s.send("DescribeRegions", (c, o, x) => c.send(new x.DescribeRegionsCommand({}), o))`; a failure is a DriverError. */
  send<Out>(operation: string, request: (client: EC2Client, options: SendOptions, sdk: Ec2Sdk) => Promise<Out>): Promise<Out>;
}

let sdk: Promise<Ec2Sdk> | undefined;
/**
 * The SDK is large (seconds and ~90 MB to load): loaded on the first AWS call, so processes and commands that never
 * reach AWS never pay for it.
 */
function loadSdk(): Promise<Ec2Sdk> {
  sdk ??= import("@aws-sdk/client-ec2").catch((err: unknown) => {
    sdk = undefined;
    throw err;
  });
  return sdk;
}

/** AWS region names (us-east-1, us-gov-west-1, ap-southeast-2): nothing else may be put into a host name. */
const REGION = /^[a-z]{2}(-[a-z]+)+-\d{1,2}$/;
/** The global EC2 host: a cloud whose endpoint is this one means "each region's own EC2 endpoint". */
const GLOBAL_HOST = "ec2.amazonaws.com";

/**
 * The endpoint URL of `region` from the cloud's endpoint: a template with a `{region}` placeholder, the global
 * https://ec2.amazonaws.com (read as https://ec2.{region}.amazonaws.com), or a fixed URL used as it is.
 */
export function endpointFor(template: string, region: string): string {
  if (!REGION.test(region)) throw new DriverError("INVALID", `"${region.slice(0, 64)}" is not an AWS region name`);
  let raw = template.trim() || DEFAULT_ENDPOINT;
  if (!raw.includes("{region}")) {
    try {
      if (new URL(raw).host === GLOBAL_HOST) raw = DEFAULT_ENDPOINT;
    } catch {
      // reported below
    }
  }
  let url: URL;
  try {
    url = new URL(raw.replaceAll("{region}", region));
  } catch {
    throw new DriverError("INVALID", `the cloud endpoint "${template}" is not a URL (expected e.g. ${DEFAULT_ENDPOINT})`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") throw new DriverError("INVALID", `the cloud endpoint must be http(s), not ${url.protocol}`);
  if (url.username || url.password) throw new DriverError("INVALID", "the cloud endpoint must not carry a user or password");
  return url.toString().replace(/\/$/, "");
}

interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

function credentialsOf(target: DriverTarget): AwsCredentials {
  const { accessKeyId, secretAccessKey, sessionToken } = target.credentials;
  const missing = [!accessKeyId && "accessKeyId", !secretAccessKey && "secretAccessKey"].filter(Boolean);
  if (missing.length > 0 || !accessKeyId || !secretAccessKey) {
    throw new DriverError("AUTH", `the account's AWS credentials lack ${missing.join(" and ")} (fields: accessKeyId, secretAccessKey, optional sessionToken)`);
  }
  return sessionToken ? { accessKeyId, secretAccessKey, sessionToken } : { accessKeyId, secretAccessKey };
}

/**
 * Runs `fn` with a session on `region`; the client and its sockets are released when `fn` settles. `secrets` are
 * values of the request besides the credentials (user data) that must never reach an error message either.
 */
export async function withEc2<T>(target: DriverTarget, region: string, options: DriverCallOptions, fn: (session: Ec2Session) => Promise<T>, secretValues: readonly string[] = []): Promise<T> {
  const credentials = credentialsOf(target);
  const secrets = [credentials.accessKeyId, credentials.secretAccessKey, credentials.sessionToken ?? "", ...secretValues];
  const remainingMs = () => Math.max(1, options.deadline.getTime() - Date.now());
  if (options.signal.aborted) throw classifyAwsError(abortError(), "call", secrets, true);
  const x = await loadSdk();
  const client = new x.EC2Client({
    region,
    endpoint: endpointFor(target.cloud.endpoint, region),
    credentials,
    maxAttempts: 1,
    // Everything the SDK would otherwise read from the environment or ~/.aws is fixed here: the cloud row decides.
    retryMode: "standard",
    defaultsMode: "standard",
    useFipsEndpoint: false,
    useDualstackEndpoint: false,
    userAgentAppId: "dispatcher",
    requestHandler: { connectionTimeout: Math.min(MAX_CONNECT_MS, remainingMs()), requestTimeout: remainingMs(), throwOnRequestTimeout: true },
  });
  const session: Ec2Session = {
    region,
    async send(operation, request) {
      try {
        return await request(client, { abortSignal: callSignal(options), requestTimeout: remainingMs() }, x);
      } catch (err) {
        throw classifyAwsError(err, operation, secrets, options.signal.aborted);
      }
    },
  };
  try {
    return await fn(session);
  } finally {
    client.destroy();
  }
}

function abortError(): Error {
  const e = new Error("aborted");
  e.name = "AbortError";
  return e;
}
