// Data access for clouds and their regions. Every function takes the client or the caller's transaction; changes
// bump the cloud's version (its etag) in the same statement that checks it.
import type { ProvisioningDb } from "../../db/clients.js";

export interface RegionRow {
  id: string;
  name: string;
  dataCenters: string[];
}

export interface CloudRow {
  id: string;
  name: string;
  driver: string;
  endpoint: string;
  version: number;
  createdAt: Date;
  updatedAt: Date;
  regions: RegionRow[];
}

const CLOUD_SELECT = {
  id: true,
  name: true,
  driver: true,
  endpoint: true,
  version: true,
  createdAt: true,
  updatedAt: true,
  regions: { select: { regionId: true, name: true, dataCenters: true }, orderBy: { position: "asc" } },
} as const;

type Selected = Omit<CloudRow, "regions"> & { regions: Array<{ regionId: string; name: string; dataCenters: unknown }> };

function toRow(c: Selected): CloudRow {
  const { regions, ...rest } = c;
  return {
    ...rest,
    regions: regions.map((r) => ({ id: r.regionId, name: r.name, dataCenters: Array.isArray(r.dataCenters) ? r.dataCenters.filter((d): d is string => typeof d === "string") : [] })),
  };
}

function regionData(cloudId: string, regions: RegionRow[]) {
  return regions.map((r, position) => ({ cloudId, regionId: r.id, name: r.name, dataCenters: r.dataCenters, position }));
}

export async function insertCloud(db: ProvisioningDb, cloud: { id: string; name: string; driver: string; endpoint: string; regions: RegionRow[] }): Promise<void> {
  const { regions, ...row } = cloud;
  await db.cloud.create({ data: row });
  if (regions.length > 0) await db.cloudRegion.createMany({ data: regionData(cloud.id, regions) });
}

export async function findCloud(db: ProvisioningDb, id: string): Promise<CloudRow | null> {
  const c = await db.cloud.findUnique({ where: { id }, select: CLOUD_SELECT });
  return c ? toRow(c) : null;
}

export async function listClouds(db: ProvisioningDb, filter: { driver?: string | undefined; afterId?: string | undefined; limit: number }): Promise<CloudRow[]> {
  const rows = await db.cloud.findMany({
    where: { ...(filter.driver ? { driver: filter.driver } : {}), ...(filter.afterId ? { id: { gt: filter.afterId } } : {}) },
    orderBy: { id: "asc" },
    take: filter.limit,
    select: CLOUD_SELECT,
  });
  return rows.map(toRow);
}

/** Bumps the version when it is `expectedVersion` (any when null) and applies `fields`; "missing" or "stale" otherwise. */
export async function bumpCloud(db: ProvisioningDb, id: string, expectedVersion: number | null, fields: { name?: string; endpoint?: string } = {}): Promise<"ok" | "missing" | "stale"> {
  const { count } = await db.cloud.updateMany({ where: { id, ...(expectedVersion === null ? {} : { version: expectedVersion }) }, data: { ...fields, version: { increment: 1 } } });
  if (count === 1) return "ok";
  return (await db.cloud.count({ where: { id } })) > 0 ? "stale" : "missing";
}

export async function replaceRegions(db: ProvisioningDb, cloudId: string, regions: RegionRow[]): Promise<void> {
  await db.cloudRegion.deleteMany({ where: { cloudId } });
  if (regions.length > 0) await db.cloudRegion.createMany({ data: regionData(cloudId, regions) });
}

export async function countAccountsOfCloud(db: ProvisioningDb, cloudId: string): Promise<number> {
  return db.account.count({ where: { cloudId } });
}

export async function deleteCloud(db: ProvisioningDb, id: string): Promise<void> {
  await db.cloud.deleteMany({ where: { id } });
}
