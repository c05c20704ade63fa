// The generic resource mechanism's job kinds for the catalog (src/app/catalog.ts): the tag kind every type shares and
// discovery. Each type's own kinds (create, delete, its changes) are declared beside its service and listed here.
import type { JobKind } from "../jobs/catalog.js";
import { resourceTagKind } from "./kinds.js";
import { resourcesSyncKind } from "./sync.js";

export const RESOURCE_KINDS: JobKind<never>[] = [resourceTagKind, resourcesSyncKind] as unknown as JobKind<never>[];
