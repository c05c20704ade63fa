// The client's side of dispatcher/v1/system.proto: server info and who the caller is.
import { GetServerInfoRequest, SystemServiceService, WhoAmIRequest } from "../../gen/proto/dispatcher/v1/system.js";

export const system = { definition: SystemServiceService, requests: { getServerInfo: GetServerInfoRequest, whoAmI: WhoAmIRequest } };
