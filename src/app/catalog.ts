// The job catalog of this build, assembled from the kinds each domain declares beside its own code.
import { fleetRunKindOver } from "../agent/fleet-kind.js";
import type { AgentChannels } from "../agent/agent-channels.js";
import { runScriptKindOver } from "../agent/run-script-kind.js";
import { JobCatalog } from "../jobs/catalog.js";
import { diagnosticKind } from "../jobs/kinds/diagnostic.js";
import { accountDiscoverKind } from "../provisioning/discovery/kind.js";
import { NETWORK_KINDS } from "../network/kinds.js";
import { RESOURCE_KINDS } from "../resources/index.js";
import { SERVER_KINDS } from "../servers/kinds/index.js";
import { STORAGE_KINDS } from "../storage/kinds.js";

/** `agentChannels`: a worker's kept channels to agents, for the kinds that call agents (none: a channel per call). */
export function buildCatalog(options: { agentChannels?: AgentChannels } = {}): JobCatalog {
  const catalog = new JobCatalog();
  catalog.register(diagnosticKind);
  catalog.register(runScriptKindOver(options.agentChannels));
  catalog.register(fleetRunKindOver(options.agentChannels));
  catalog.register(accountDiscoverKind);
  for (const kind of SERVER_KINDS) catalog.register(kind);
  for (const kind of RESOURCE_KINDS) catalog.register(kind);
  for (const kind of NETWORK_KINDS) catalog.register(kind);
  for (const kind of STORAGE_KINDS) catalog.register(kind);
  return catalog;
}
