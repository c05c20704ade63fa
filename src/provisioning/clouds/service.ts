// Clouds: a provider's connection point (driver, endpoint checked against SSRF) and its regions. Every change bumps
// the cloud's version; calls that take an etag fail with ABORTED when it is stale.
import { inTransaction, type ProvisioningDb } from "../../db/clients.js";
import { isUniqueViolation } from "../../db/errors.js";
import { newId } from "../../db/ids.js";
import { AlreadyExistsError, FailedPreconditionError, NotFoundError } from "../../errors.js";
import { etagOf, staleEtag, versionOf } from "../../iam/etag.js";
import { pageOf, type Page } from "../../db/page.js";
import * as repo from "./repository.js";
import { recordChange } from "../../audit/trail.js";
import { checkCloudEndpoint, checkEndpoint, type EndpointPolicy } from "./endpoint.js";

export type Region = repo.RegionRow;

export interface CloudView {
  id: string;
  name: string;
  driver: string;
  endpoint: string;
  regions: Region[];
  etag: string;
  createdAt: Date;
  updatedAt: Date;
}

export interface CloudPatch {
  name?: string | undefined;
  endpoint?: string | undefined;
  regions?: Region[] | undefined;
}

export interface CloudService {
  /** INVALID_ARGUMENT (endpoint) when the endpoint policy refuses the endpoint; ALREADY_EXISTS for a taken name. */
  createCloud(input: { name: string; driver: string; endpoint: string; regions: Region[] }): Promise<CloudView>;
  getCloud(id: string): Promise<CloudView>;
  listClouds(query: { pageSize: number; afterId?: string | undefined; driver?: string | undefined }): Promise<Page<CloudView>>;
  updateCloud(id: string, etag: string, patch: CloudPatch): Promise<CloudView>;
  /** FAILED_PRECONDITION (CLOUD_IN_USE) while accounts are connected to it. */
  deleteCloud(id: string, etag: string): Promise<void>;
}

function toView(row: repo.CloudRow): CloudView {
  const { version, ...rest } = row;
  return { ...rest, etag: etagOf(version) };
}

export function createCloudService(db: ProvisioningDb, policy: EndpointPolicy): CloudService {
  async function get(id: string, tx: ProvisioningDb = db): Promise<CloudView> {
    const row = await repo.findCloud(tx, id);
    if (!row) throw new NotFoundError("cloud", id);
    return toView(row);
  }

  return {
    async createCloud(input) {
      const endpoint = await checkCloudEndpoint("endpoint", input.endpoint, input.driver, policy);
      const id = newId();
      await uniqueName(input.name, () =>
        inTransaction(db, async (tx) => {
          await repo.insertCloud(tx, { ...input, id, endpoint });
          await recordChange(tx, { action: "cloud.create", objectType: "cloud", objectId: id, after: { ...input, endpoint } });
        }),
      );
      return get(id);
    },
    getCloud: (id) => get(id),
    async listClouds(query) {
      const rows = await repo.listClouds(db, { driver: query.driver, afterId: query.afterId, limit: query.pageSize + 1 });
      return pageOf(rows.map(toView), query.pageSize, (c) => c.id);
    },
    async updateCloud(id, etag, patch) {
      const endpoint = patch.endpoint === undefined ? undefined : await checkEndpoint("endpoint", patch.endpoint, policy);
      const fields: { name?: string; endpoint?: string } = {};
      if (patch.name !== undefined) fields.name = patch.name;
      if (endpoint !== undefined) fields.endpoint = endpoint;
      return uniqueName(patch.name, () =>
        inTransaction(db, async (tx) => {
          const before = await repo.findCloud(tx, id);
          const outcome = await repo.bumpCloud(tx, id, versionOf(etag), fields);
          if (outcome === "missing") throw new NotFoundError("cloud", id);
          if (outcome === "stale") throw staleEtag("cloud", id);
          if (patch.regions) await repo.replaceRegions(tx, id, patch.regions);
          const after = await get(id, tx);
          await recordChange(tx, { action: "cloud.update", objectType: "cloud", objectId: id, before, after });
          return after;
        }),
      );
    },
    async deleteCloud(id, etag) {
      await inTransaction(db, async (tx) => {
        const before = await repo.findCloud(tx, id);
        const outcome = await repo.bumpCloud(tx, id, versionOf(etag));
        if (outcome === "missing") throw new NotFoundError("cloud", id);
        if (outcome === "stale") throw staleEtag("cloud", id);
        const accounts = await repo.countAccountsOfCloud(tx, id);
        if (accounts > 0) throw new FailedPreconditionError(`cloud ${JSON.stringify(id)} has ${accounts} connected account(s); remove them first`, "CLOUD_IN_USE");
        await repo.deleteCloud(tx, id);
        await recordChange(tx, { action: "cloud.delete", objectType: "cloud", objectId: id, before });
      });
    },
  };
}

/** Runs `fn`, turning a duplicate cloud name into ALREADY_EXISTS. */
async function uniqueName<T>(name: string | undefined, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (name !== undefined && isUniqueViolation(err)) throw new AlreadyExistsError("cloud", name);
    throw err;
  }
}
