// Every job kind the dispatcher knows, in one catalog.
import { JobCatalog } from "../catalog.js";
import { diagnosticKind } from "./diagnostic.js";

export function buildCatalog(): JobCatalog {
  const catalog = new JobCatalog();
  catalog.register(diagnosticKind);
  return catalog;
}
