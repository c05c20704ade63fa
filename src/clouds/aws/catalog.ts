// What EC2's API does not say about sizes: a built-in table of common instance types with their vCPUs, memory,
// instance storage and on-demand Linux price (US East (N. Virginia), USD per hour, in micros). Prices in other
// regions differ by a few percent; the table is the catalog's estimate, not a bill. Region display names too.
import type { DriverProduct } from "../driver.js";

type Row = [id: string, cpus: number, memoryGiB: number, instanceStoreGb: number, usdPerHour: number];

const ROWS: readonly Row[] = [
  ["t3.nano", 2, 0.5, 0, 0.0052],
  ["t3.micro", 2, 1, 0, 0.0104],
  ["t3.small", 2, 2, 0, 0.0208],
  ["t3.medium", 2, 4, 0, 0.0416],
  ["t3.large", 2, 8, 0, 0.0832],
  ["t3.xlarge", 4, 16, 0, 0.1664],
  ["t3.2xlarge", 8, 32, 0, 0.3328],
  ["t2.micro", 1, 1, 0, 0.0116],
  ["t4g.micro", 2, 1, 0, 0.0084],
  ["t4g.small", 2, 2, 0, 0.0168],
  ["m5.large", 2, 8, 0, 0.096],
  ["m5.xlarge", 4, 16, 0, 0.192],
  ["m5.2xlarge", 8, 32, 0, 0.384],
  ["m5.4xlarge", 16, 64, 0, 0.768],
  ["m5d.large", 2, 8, 75, 0.113],
  ["m6i.large", 2, 8, 0, 0.096],
  ["m6i.xlarge", 4, 16, 0, 0.192],
  ["m7g.large", 2, 8, 0, 0.0816],
  ["c5.large", 2, 4, 0, 0.085],
  ["c5.xlarge", 4, 8, 0, 0.17],
  ["c5d.large", 2, 4, 50, 0.096],
  ["c6i.large", 2, 4, 0, 0.085],
  ["r5.large", 2, 16, 0, 0.126],
  ["r5.xlarge", 4, 32, 0, 0.252],
];

/** Every instance type the driver offers, cheapest first. diskGb is instance storage (0: EBS only). */
export const INSTANCE_TYPES: readonly DriverProduct[] = ROWS.map(([id, cpus, memoryGiB, diskGb, usd]) => ({
  id,
  name: `${id} (${cpus} vCPU, ${memoryGiB} GiB)`,
  cpus,
  memoryMb: Math.round(memoryGiB * 1024),
  diskGb,
  hourlyPriceMicros: Math.round(usd * 1_000_000),
  // A stopped instance stops its hourly charge (its EBS volumes are billed apart).
  accruesWhenStopped: false,
})).sort((a, b) => a.hourlyPriceMicros - b.hourlyPriceMicros || a.id.localeCompare(b.id));

const REGION_NAMES: Readonly<Record<string, string>> = {
  "us-east-1": "US East (N. Virginia)",
  "us-east-2": "US East (Ohio)",
  "us-west-1": "US West (N. California)",
  "us-west-2": "US West (Oregon)",
  "ca-central-1": "Canada (Central)",
  "eu-west-1": "Europe (Ireland)",
  "eu-west-2": "Europe (London)",
  "eu-west-3": "Europe (Paris)",
  "eu-central-1": "Europe (Frankfurt)",
  "eu-north-1": "Europe (Stockholm)",
  "eu-south-1": "Europe (Milan)",
  "ap-northeast-1": "Asia Pacific (Tokyo)",
  "ap-northeast-2": "Asia Pacific (Seoul)",
  "ap-northeast-3": "Asia Pacific (Osaka)",
  "ap-southeast-1": "Asia Pacific (Singapore)",
  "ap-southeast-2": "Asia Pacific (Sydney)",
  "ap-south-1": "Asia Pacific (Mumbai)",
  "sa-east-1": "South America (São Paulo)",
};

export function regionName(id: string): string {
  return REGION_NAMES[id] ?? id;
}
