// The rules of SystemService: what the running process says about itself and about its caller.
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import type { Principal } from "../iam/principal.js";

export interface ServerInfo {
  version: string;
  /** The roles this process runs, e.g. ["dispatcher", "worker", "monitor"]. */
  roles: string[];
  startTime: Date;
  /** Unique per process start: tells replicas (and restarts) apart. */
  instanceId: string;
}

export interface SystemServiceOptions {
  roles: string[];
  startTime?: Date;
  instanceId?: string;
  /** Default: the version in package.json. */
  version?: string;
  /** Whether the analytics database answers (health detail); absent in processes that do not use it. */
  analytics?: () => Promise<ComponentStatus>;
}

/** A dependency the process serves without, and whether it is there now. */
export interface ComponentStatus {
  name: string;
  available: boolean;
  detail: string;
}

export interface SystemService {
  serverInfo(): ServerInfo;
  /** The analytics database's status, when this process uses it. */
  analyticsStatus(): Promise<ComponentStatus | undefined>;
  whoAmI(principal: Readonly<Principal>): Principal;
}

export function createSystemService(options: SystemServiceOptions): SystemService {
  const info: ServerInfo = {
    version: options.version ?? packageVersion(),
    roles: [...options.roles],
    startTime: options.startTime ?? new Date(),
    instanceId: options.instanceId ?? `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`,
  };
  return {
    serverInfo: () => ({ ...info, roles: [...info.roles] }),
    analyticsStatus: async () => options.analytics?.(),
    whoAmI: (principal) => ({ id: principal.id, kind: principal.kind, roles: [...principal.roles], displayName: principal.displayName }),
  };
}

/** The version field of the project's package.json. */
export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version?: unknown };
  return typeof pkg.version === "string" ? pkg.version : "0.0.0";
}
