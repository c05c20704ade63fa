// The client's side of dispatcher/v1/servers.proto: server lifecycle, inventory, history, products and images.
import {
  GetServerRequest,
  LaunchServerRequest,
  ListImagesRequest,
  ListProductsRequest,
  ListServerEventsRequest,
  ListServersRequest,
  RebootServerRequest,
  ServerServiceService,
  SetServerFirewallsRequest,
  SetServerTagsRequest,
  StartServerRequest,
  StopServerRequest,
  TerminateServerRequest,
} from "../../gen/proto/dispatcher/v1/servers.js";

export const servers = {
  definition: ServerServiceService,
  requests: {
    launchServer: LaunchServerRequest,
    startServer: StartServerRequest,
    stopServer: StopServerRequest,
    rebootServer: RebootServerRequest,
    terminateServer: TerminateServerRequest,
    getServer: GetServerRequest,
    listServers: ListServersRequest,
    listServerEvents: ListServerEventsRequest,
    listProducts: ListProductsRequest,
    listImages: ListImagesRequest,
    setServerFirewalls: SetServerFirewallsRequest,
    setServerTags: SetServerTagsRequest,
  },
};
