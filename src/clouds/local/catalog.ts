// What the local cloud offers: regions with their data centers and capabilities, products with prices, and images
// (the command each server runs). Built in, or read from localCloud.catalogFile — re-read whenever the file changes,
// so an operator (or a test) can take a capability away while the dispatcher runs.
import { readFileSync, statSync } from "node:fs";
import { z } from "zod";
import { CAPABILITIES, DriverError } from "../driver.js";

const id = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, "1-63 letters, digits, _ . - (starting with a letter or digit)");

const regionSchema = z.strictObject({
  id,
  name: z.string().min(1),
  dataCenters: z.array(id).min(1),
  capabilities: z.array(z.enum(CAPABILITIES)),
  /** Product and image ids offered here; every one in the catalog when absent. */
  products: z.array(id).optional(),
  images: z.array(id).optional(),
});

const productSchema = z.strictObject({
  id,
  name: z.string().min(1),
  cpus: z.number().int().min(1),
  memoryMb: z.number().int().min(1),
  diskGb: z.number().int().min(0),
  hourlyPriceMicros: z.number().int().min(0),
  accruesWhenStopped: z.boolean().default(false),
});

const imageSchema = z.strictObject({
  id,
  name: z.string().min(1),
  platform: z.string().min(1).default("linux"),
  /**
   * argv; placeholders {node} (this Node binary), {root} (the dispatcher's install), {tsx} (its TypeScript loader),
   * {dir} (the guest's root: its HOME and working directory), {port} and {bind} (where the guest must listen),
   * {address} (the server's own address, where it is reached).
   */
  command: z.array(z.string().min(1)).min(1),
  /** The port the guest serves on its server's address (servers with addresses of their own); others get a free one. */
  port: z.number().int().min(1).max(65535).default(8080),
  /** Extra environment of the process (same placeholders). */
  env: z.record(z.string(), z.string()).default({}),
});

const fileSchema = z.strictObject({
  regions: z.array(regionSchema).min(1).optional(),
  products: z.array(productSchema).min(1).optional(),
  images: z.array(imageSchema).min(1).optional(),
});

export type LocalRegion = z.infer<typeof regionSchema>;
export type LocalProduct = z.infer<typeof productSchema>;
export type LocalImage = z.infer<typeof imageSchema>;

export interface LocalCatalog {
  regions: LocalRegion[];
  products: LocalProduct[];
  images: LocalImage[];
}

/** The quick start's catalog: one region, two sizes, the `basic` and `agent` guests. No object storage, as many real regions. */
export const BUILT_IN_CATALOG: LocalCatalog = {
  regions: [{ id: "local", name: "This machine", dataCenters: ["local-a"], capabilities: ["compute", "block_storage", "networking", "firewalls", "static_addresses", "key_pairs"] }],
  products: [
    { id: "small", name: "Small (1 CPU, 512 MB)", cpus: 1, memoryMb: 512, diskGb: 1, hourlyPriceMicros: 10_000, accruesWhenStopped: false },
    { id: "medium", name: "Medium (2 CPU, 2 GB)", cpus: 2, memoryMb: 2048, diskGb: 5, hourlyPriceMicros: 40_000, accruesWhenStopped: false },
  ],
  images: [
    { id: "basic", name: "Basic guest (HTTP ok on its port)", platform: "linux", command: ["{node}", "{root}/src/clouds/local/guest.mjs", "{port}", "{bind}"], env: {}, port: 8080 },
    // The dispatcher agent on the server's port; it registers with the join token and bridge URL of its bootstrap and
    // keeps its registration in the server's directory, so a stop and start needs no new token.
    {
      id: "agent",
      name: "Guest running the dispatcher agent",
      platform: "linux",
      command: ["{node}", "{root}/bin/dispatcher-agent.js"],
      env: { DISPATCHER_AGENT_PORT: "{port}", DISPATCHER_AGENT_BIND: "{bind}", DISPATCHER_AGENT_ADDRESS: "{address}", DISPATCHER_AGENT_STATE_DIR: "{dir}", DISPATCHER_DATA_DIR: "{dir}", DISPATCHER_LOGGING_DIR: "-" },
      // The agent's port (Enstratius'), on each server's own address.
      port: 2003,
    },
  ],
};

/**
 * A reader of the catalog: the built-in one when `file` is "", otherwise the file's sections over the built-in ones
 * (a section the file leaves out stays built in). The file is parsed again only when its mtime or size changed.
 */
export function catalogReader(file: string): () => LocalCatalog {
  if (file === "") return () => BUILT_IN_CATALOG;
  let cached: { stamp: string; catalog: LocalCatalog } | undefined;
  return () => {
    let stamp: string;
    try {
      const s = statSync(file);
      stamp = `${s.mtimeMs}:${s.size}:${s.ino}`;
    } catch (err) {
      throw new DriverError("UNAVAILABLE", `local cloud catalog ${file} cannot be read`, { cause: err });
    }
    if (cached?.stamp === stamp) return cached.catalog;
    cached = { stamp, catalog: parseCatalog(file) };
    return cached.catalog;
  };
}

function parseCatalog(file: string): LocalCatalog {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw new DriverError("UNAVAILABLE", `local cloud catalog ${file} is not readable JSON`, { cause: err });
  }
  const parsed = fileSchema.safeParse(raw);
  if (!parsed.success) {
    const why = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
    throw new DriverError("INTERNAL", `local cloud catalog ${file} is invalid: ${why}`, { retryable: false });
  }
  return { regions: parsed.data.regions ?? BUILT_IN_CATALOG.regions, products: parsed.data.products ?? BUILT_IN_CATALOG.products, images: parsed.data.images ?? BUILT_IN_CATALOG.images };
}

/** The region, or NOT_FOUND. */
export function regionOf(catalog: LocalCatalog, regionId: string): LocalRegion {
  const region = catalog.regions.find((r) => r.id === regionId);
  if (!region) throw new DriverError("NOT_FOUND", `the local cloud has no region "${regionId}"`);
  return region;
}

export function productsIn(catalog: LocalCatalog, region: LocalRegion): LocalProduct[] {
  return region.products ? catalog.products.filter((p) => region.products?.includes(p.id)) : catalog.products;
}

export function imagesIn(catalog: LocalCatalog, region: LocalRegion): LocalImage[] {
  return region.images ? catalog.images.filter((i) => region.images?.includes(i.id)) : catalog.images;
}
