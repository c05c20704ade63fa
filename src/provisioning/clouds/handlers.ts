// dispatcher.v1 CloudService over gRPC: every request field validated here (INVALID_ARGUMENT with field violations),
// then the cloud service, then complete response messages.
import { CloudServiceService as C } from "../../gen/proto/dispatcher/v1/provisioning.js";
import { defineService, unary, type RpcService } from "../../rpc/adapter.js";
import { afterIdFromToken, ETAG_RULES, ID_RULES, maskPaths, nextToken, requireString, validateOne } from "../../rpc/validate.js";
import { CLOUD_NAME_RULES, cloudToProto, DRIVER_RULES, ENDPOINT_RULES, regionList } from "../mapper.js";
import type { CloudPatch, CloudService } from "./service.js";

export function cloudHandlers(clouds: CloudService): RpcService {
  return defineService(C, {
    createCloud: unary(C.createCloud, async (req) => {
      const input = validateOne((v) => ({
        name: v.string("name", req.name, CLOUD_NAME_RULES),
        driver: v.string("driver", req.driver, DRIVER_RULES),
        endpoint: v.string("endpoint", req.endpoint, ENDPOINT_RULES),
        regions: regionList(v, "regions", req.regions),
      }));
      return { cloud: cloudToProto(await clouds.createCloud(input)) };
    }),
    getCloud: unary(C.getCloud, async (req) => ({ cloud: cloudToProto(await clouds.getCloud(requireString("id", req.id, ID_RULES))) })),
    listClouds: unary(C.listClouds, async (req) => {
      const q = validateOne((v) => {
        const driver = v.optionalString("driver", req.driver, DRIVER_RULES);
        return { driver: driver || undefined, pageSize: v.pageSize("page_size", req.pageSize), afterId: afterIdFromToken(v, req.pageToken, { driver }) };
      });
      const page = await clouds.listClouds(q);
      return { clouds: page.items.map(cloudToProto), nextPageToken: nextToken(page, { driver: q.driver ?? "" }) };
    }),
    updateCloud: unary(C.updateCloud, async (req) => {
      const { id, etag, patch } = validateOne((v) => {
        const mask = maskPaths(v, req.updateMask, ["name", "endpoint", "regions"] as const);
        const patch: CloudPatch = {};
        if (mask.has("name")) patch.name = v.string("name", req.name, CLOUD_NAME_RULES);
        if (mask.has("endpoint")) patch.endpoint = v.string("endpoint", req.endpoint, ENDPOINT_RULES);
        if (mask.has("regions")) patch.regions = regionList(v, "regions", req.regions);
        return { id: v.string("id", req.id, ID_RULES), etag: v.string("etag", req.etag, ETAG_RULES), patch };
      });
      return { cloud: cloudToProto(await clouds.updateCloud(id, etag, patch)) };
    }),
    deleteCloud: unary(C.deleteCloud, async (req) => {
      const { id, etag } = validateOne((v) => ({ id: v.string("id", req.id, ID_RULES), etag: v.string("etag", req.etag, ETAG_RULES) }));
      await clouds.deleteCloud(id, etag);
      return {};
    }),
  });
}
