// The server job kinds: lifecycle (launch, start, stop, reboot, terminate) and discovery (servers.sync).
import type { JobKind } from "../../jobs/catalog.js";
import { serverLaunchKind } from "./launch.js";
import { serverRebootKind, serverStartKind, serverStopKind, serverTerminateKind } from "./lifecycle.js";
import { serversSyncKind } from "./sync.js";
import { serverSetFirewallsKind } from "./firewalls.js";
import { serverTagKind } from "./tags.js";

export { SERVERS_SYNC_KIND, SERVER_LAUNCH_KIND, SERVER_REBOOT_KIND, SERVER_START_KIND, SERVER_STOP_KIND, SERVER_TERMINATE_KIND, SERVER_SET_FIREWALLS_KIND } from "./names.js";
export type { ServersSyncPayload } from "./sync.js";

/** Every server job kind, for the catalog (src/app/catalog.ts). */
export const SERVER_KINDS: JobKind<never>[] = [serverLaunchKind, serverStartKind, serverStopKind, serverRebootKind, serverTerminateKind, serversSyncKind, serverSetFirewallsKind, serverTagKind] as unknown as JobKind<never>[];
