// The names of the server job kinds, apart from their handlers so that the API side can name them without loading
// the driver-facing code.
import type { ServerAction } from "../model.js";

export const SERVER_LAUNCH_KIND = "server.launch";
export const SERVER_START_KIND = "server.start";
export const SERVER_STOP_KIND = "server.stop";
export const SERVER_REBOOT_KIND = "server.reboot";
export const SERVER_TERMINATE_KIND = "server.terminate";
/** Discovery of an account's servers; the monitor's scheduler creates these jobs (payload {accountId}). */
export const SERVERS_SYNC_KIND = "servers.sync";

export const ACTION_KINDS: Readonly<Record<ServerAction, string>> = {
  start: SERVER_START_KIND,
  stop: SERVER_STOP_KIND,
  reboot: SERVER_REBOOT_KIND,
  terminate: SERVER_TERMINATE_KIND,
};
/** Puts a server in exactly the firewalls of its payload; done when the cloud shows it so. */
export const SERVER_SET_FIREWALLS_KIND = "server.set_firewalls";
/** Sets and removes tags of a server on its cloud; done when the cloud shows them. */
export const SERVER_TAG_KIND = "server.tag";
