// The `account.discover` job kind: validates an account's credentials against its cloud (testContext), then discovers
// its regions, the capabilities it has in each (subscriptions), and the products and images it may launch. Connecting
// an account runs it once as the validation job; the monitor runs it again on a schedule; DiscoverAccount on demand.
import { z } from "zod";
import { CAPABILITIES, type Capability, type CloudDriver, type DriverCallOptions, type DriverTarget } from "../../clouds/driver.js";
import { withCloud } from "../../clouds/access.js";
import type { JobContext, JobKind, JobOutcome } from "../../jobs/catalog.js";
import { PermanentJobError } from "../../jobs/errors.js";
import { applyDiscovery, recordValidationFailure, type DiscoveredRegion, type Discovery } from "./repository.js";

export const ACCOUNT_DISCOVER_KIND = "account.discover";

export const accountDiscoverPayload = z.object({ accountId: z.string().min(1).max(64) });
export type AccountDiscoverPayload = z.output<typeof accountDiscoverPayload>;

/** Time all the driver calls of one discovery may take together (an account may have many regions). */
const DISCOVERY_CALLS_MS = 5 * 60_000;
/** Column sizes of account_regions.region_id, catalog_products.product_id and catalog_images.image_id. */
const MAX_REGION_ID = 64;
const MAX_PRODUCT_ID = 128;
const MAX_IMAGE_ID = 255;
const KNOWN_CAPABILITIES: ReadonlySet<string> = new Set(CAPABILITIES);

export const accountDiscoverKind: JobKind<AccountDiscoverPayload> = {
  kind: ACCOUNT_DISCOVER_KIND,
  payload: accountDiscoverPayload,
  ackWaitMs: 60_000,
  maxAttempts: 5,
  backoffMs: [1_000, 5_000, 30_000],
  timeoutMs: 15 * 60_000,
  permission: "accounts.discover",

  async handle(ctx, { accountId }) {
    let validated = false;
    let discovery: Discovery | null;
    try {
      discovery = await withCloud(ctx, accountId, { purpose: ACCOUNT_DISCOVER_KIND, timeoutMs: DISCOVERY_CALLS_MS }, async (driver, target, call, account) => {
        if (account.status === "DISABLED") return null;
        const identity = await driver.testContext(target, call);
        validated = true;
        return { providerAccountId: identity.providerAccountId, regions: await discoverRegions(ctx, driver, target, call) };
      });
    } catch (err) {
      // A permanent failure has no effects hook, so the account's FAILED status is written here, in a transaction of
      // its own, before the job fails. It is keyed by the job (recordValidationFailure writes once per job id), so a
      // redelivered attempt that fails the same way records nothing twice. Only failures before the credentials were
      // accepted mean the account is unusable; a later failure (a region that cannot be listed) leaves it as it was.
      if (!validated && err instanceof PermanentJobError) {
        await recordValidationFailure(ctx.sql, { accountId, jobId: ctx.jobId, message: `validation failed: ${err.message}`, now: ctx.now() });
      }
      throw err;
    }
    return succeeded(ctx, accountId, discovery);
  },
};

function succeeded(ctx: JobContext, accountId: string, discovery: Discovery | null): JobOutcome {
  if (!discovery) return { status: "succeeded", result: { skipped: "the account is disabled" } };
  const result: Record<string, unknown> = { providerAccountId: discovery.providerAccountId, regions: discovery.regions.length };
  return {
    status: "succeeded",
    result,
    effects: async (tx) => {
      const now = ctx.now();
      const nextDiscoveryAt = new Date(now.getTime() + ctx.config.discovery.intervalMs);
      const changes = await applyDiscovery(tx, { accountId, jobId: ctx.jobId, discovery, now, nextDiscoveryAt });
      if (changes) Object.assign(result, changes);
      else ctx.log.warn({ accountId }, "the account was deleted while it was being discovered");
    },
  };
}

/** Every region with what the account has there; products and images only where it may launch servers. */
async function discoverRegions(ctx: JobContext, driver: CloudDriver, target: DriverTarget, call: DriverCallOptions): Promise<DiscoveredRegion[]> {
  const regions = unique((await driver.listRegions(target, call)).filter((r) => r.id !== "" && r.id.length <= MAX_REGION_ID));
  const out: DiscoveredRegion[] = [];
  for (const [n, region] of regions.entries()) {
    ctx.checkpoint();
    const capabilities = [...new Set(await driver.probeCapabilities(target, region.id, call))].filter((c): c is Capability => KNOWN_CAPABILITIES.has(c));
    const compute = capabilities.includes("compute");
    const [products, images] = compute ? await Promise.all([driver.listProducts(target, region.id, call), driver.listImages(target, region.id, call)]) : [[], []];
    out.push({
      region: { id: region.id, name: region.name || region.id, dataCenters: [...new Set(region.dataCenters)] },
      capabilities,
      products: unique(products.filter((p) => p.id !== "" && p.id.length <= MAX_PRODUCT_ID)),
      images: unique(images.filter((i) => i.id !== "" && i.id.length <= MAX_IMAGE_ID)),
    });
    await ctx.progress(Math.floor(((n + 1) * 100) / regions.length), `discovered ${n + 1} of ${regions.length} region(s)`);
  }
  return out;
}

/** The first of each id: a provider listing something twice must not break the catalog's keys. */
function unique<T extends { id: string }>(items: T[]): T[] {
  const seen = new Set<string>();
  return items.filter((i) => !seen.has(i.id) && seen.add(i.id));
}
