// Kills every process of the local cloud under one data directory: those its state files name and any process that
// carries the server marker pointing inside it (e.g. one spawned just before its launcher died, or the forwarder), and
// gives up the loopback addresses its records hold. Tests call it so no server outlives them; an operator can use it
// to clear a machine.
import { readFileSync, readdirSync, rmSync } from "node:fs";
import { join, resolve, sep } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { cloudDir } from "./account.js";
import { claimsDir } from "./network/loopback.js";
import { MARKER_ENV, isOurs, killGroup, processStart } from "./processes.js";
import { isServerId, type ServerRecord } from "./store.js";

/**
 * SIGKILLs the local cloud's processes (and their process groups) under `dataDir`; resolves once they are gone, with
 * how many were servers (a forwarder, the cloud's own, is killed too but not counted).
 */
export async function killLocalServers(dataDir: string): Promise<number> {
  const root = resolve(cloudDir(dataDir));
  const victims = new Map<number, string | null>();
  let forwarders = 0;
  for (const [pid, start] of recorded(root)) if (isOurs(pid, start)) victims.set(pid, start);
  for (const [pid, forwarder] of marked(root)) {
    if (victims.has(pid)) continue;
    victims.set(pid, processStart(pid));
    if (forwarder) forwarders++;
  }
  for (const pid of victims.keys()) {
    killGroup(pid, "SIGKILL");
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* already gone */
    }
  }
  const until = Date.now() + 5_000;
  while ([...victims].some(([pid, start]) => isOurs(pid, start)) && Date.now() < until) await sleep(10);
  releaseClaims(root);
  return victims.size - forwarders;
}

/** Removes the address claims whose owner record lies under `root`. */
function releaseClaims(root: string): void {
  const dir = claimsDir();
  for (const ip of list(dir)) {
    try {
      if (readFileSync(join(dir, ip), "utf8").startsWith(`${root}${sep}`)) rmSync(join(dir, ip), { force: true });
    } catch {
      /* released meanwhile */
    }
  }
}

function recorded(root: string): Array<[number, string | null]> {
  const out: Array<[number, string | null]> = [];
  for (const account of list(root)) {
    for (const id of list(join(root, account)).filter(isServerId)) {
      try {
        const r = JSON.parse(readFileSync(join(root, account, id, "state.json"), "utf8")) as ServerRecord;
        if (r.pid !== null) out.push([r.pid, r.pidStart]);
      } catch {
        /* no state (yet) */
      }
    }
  }
  return out;
}

/** Processes whose environment carries the marker of a directory under `root` (Linux /proc only), and whether each is a forwarder. */
function marked(root: string): Array<[number, boolean]> {
  const prefix = `${MARKER_ENV}=${root}${sep}`;
  const out: Array<[number, boolean]> = [];
  for (const entry of list("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      const marker = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").find((v) => v.startsWith(prefix));
      if (marker) out.push([pid, marker.endsWith(`${sep}network`)]);
    } catch {
      /* gone, or not ours to read */
    }
  }
  return out;
}

function list(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
