// Every job kind the dispatcher knows, in one catalog.
import { JobCatalog } from "../catalog.js";
import { runScriptKind } from "../../agent/run-script-kind.js";
import { accountDiscoverKind } from "../../provisioning/discovery-kind.js";
import { diagnosticKind } from "./diagnostic.js";
import { SERVER_KINDS } from "../../servers/kinds/index.js";

export function buildCatalog(): JobCatalog {
  const catalog = new JobCatalog();
  catalog.register(diagnosticKind);
  catalog.register(runScriptKind);
  catalog.register(accountDiscoverKind);
  for (const kind of SERVER_KINDS) catalog.register(kind);
  return catalog;
}
