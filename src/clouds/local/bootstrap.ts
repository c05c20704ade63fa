// The quick start's cloud: at start, a dispatcher makes sure a cloud named `local` (driver local) exists with an account
// named `local` connected to this machine's local cloud, its key stored through KM like any credential. Idempotent
// across restarts and safe when two dispatchers start at once (the unique names decide; the loser finds the winner's).
import { setTimeout as sleep } from "node:timers/promises";
import type { Config } from "../../config.js";
import type { ProvisioningDb } from "../../db/clients.js";
import { AlreadyExistsError, DomainError } from "../../errors.js";
import type { Principal } from "../../iam/principal.js";
import type { Logger } from "../../log.js";
import { createAccountService, lazyCredentialStore, type AccountJobs, type AccountService, type CredentialStore } from "../../provisioning/accounts/service.js";
import { createCloudService, type CloudService } from "../../provisioning/clouds/service.js";
import { LOCAL_CLOUD_ENDPOINT } from "../../provisioning/clouds/endpoint.js";
import { ensureAccountKey } from "./account.js";
import { catalogReader } from "./catalog.js";

export const LOCAL_NAME = "local";

/** Who connects the local account (the requester of its validation job). */
export const BOOTSTRAP_PRINCIPAL: Readonly<Principal> = Object.freeze({ id: "dispatcher", kind: "service", roles: ["admin"], displayName: "local cloud bootstrap" });

export interface LocalCloudBootstrap {
  dataDir: string;
  catalogFile: string;
  clouds: Pick<CloudService, "createCloud" | "listClouds">;
  accounts: Pick<AccountService, "createAccount" | "listAccounts">;
  log: Pick<Logger, "info" | "warn">;
  /** Aborts the retries (the dispatcher stopping). */
  signal?: AbortSignal;
  /** Tries before giving up with a warning (default 6), the first wait between them (default 500 ms, doubling). */
  attempts?: number;
  backoffMs?: number;
}

export interface LocalCloudIds {
  cloudId: string;
  accountId: string;
}

/**
 * Creates what is missing of the `local` cloud and account; null when it gave up (logged as a warning: the dispatcher
 * serves on without it). Failures that waiting may cure — KM still starting, a database hiccup — are retried.
 */
export async function ensureLocalCloud(options: LocalCloudBootstrap): Promise<LocalCloudIds | null> {
  const attempts = options.attempts ?? 6;
  let wait = options.backoffMs ?? 500;
  for (let attempt = 1; ; attempt++) {
    options.signal?.throwIfAborted();
    try {
      return await ensureOnce(options);
    } catch (err) {
      const permanent = err instanceof DomainError && !["UNAVAILABLE", "DEADLINE_EXCEEDED", "ABORTED"].includes(err.code);
      if (permanent || attempt >= attempts || options.signal?.aborted) {
        options.log.warn({ err: errorSummary(err), attempts: attempt }, "the local cloud is not connected; connect it with CreateAccount once the cause is fixed (see docs/clouds.md)");
        return null;
      }
      await sleep(wait, undefined, options.signal ? { signal: options.signal } : {});
      wait = Math.min(wait * 2, 8_000);
    }
  }
}

async function ensureOnce(options: LocalCloudBootstrap): Promise<LocalCloudIds | null> {
  const cloud = (await findCloud(options)) ?? (await createCloud(options));
  if (!cloud) return null;
  const existing = await findAccount(options, cloud.id);
  if (existing) return { cloudId: cloud.id, accountId: existing };
  try {
    const { account } = await options.accounts.createAccount(BOOTSTRAP_PRINCIPAL, {
      name: LOCAL_NAME,
      cloudId: cloud.id,
      defaultBudgetCode: "",
      credentialType: "local",
      credentialFields: { key: ensureAccountKey(options.dataDir) },
    });
    options.log.info({ cloudId: cloud.id, accountId: account.id }, "connected the local cloud's account");
    return { cloudId: cloud.id, accountId: account.id };
  } catch (err) {
    if (!(err instanceof AlreadyExistsError)) throw err;
    const winner = await findAccount(options, cloud.id);
    if (!winner) throw err;
    return { cloudId: cloud.id, accountId: winner };
  }
}

async function createCloud(options: LocalCloudBootstrap): Promise<{ id: string } | null> {
  const regions = catalogReader(options.catalogFile)().regions.map((r) => ({ id: r.id, name: r.name, dataCenters: [...r.dataCenters] }));
  try {
    const cloud = await options.clouds.createCloud({ name: LOCAL_NAME, driver: "local", endpoint: LOCAL_CLOUD_ENDPOINT, regions });
    options.log.info({ cloudId: cloud.id }, "created the local cloud");
    return cloud;
  } catch (err) {
    if (!(err instanceof AlreadyExistsError)) throw err;
    const winner = await findCloud(options);
    if (winner) return winner;
    // The name is taken by a cloud of another driver: the operator's choice, left alone.
    options.log.warn("a cloud named \"local\" exists with another driver; the local cloud is not connected");
    return null;
  }
}

async function findCloud(options: LocalCloudBootstrap): Promise<{ id: string } | null> {
  let afterId: string | undefined;
  do {
    const page = await options.clouds.listClouds({ pageSize: 100, afterId, driver: "local" });
    const hit = page.items.find((c) => c.name === LOCAL_NAME);
    if (hit) return hit;
    afterId = page.nextAfter;
  } while (afterId);
  return null;
}

async function findAccount(options: LocalCloudBootstrap, cloudId: string): Promise<string | null> {
  let afterId: string | undefined;
  do {
    const page = await options.accounts.listAccounts({ all: true }, { pageSize: 100, afterId, cloudId });
    const hit = page.items.find((a) => a.name === LOCAL_NAME);
    if (hit) return hit.id;
    afterId = page.nextAfter;
  } while (afterId);
  return null;
}

function errorSummary(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

export interface BackgroundBootstrap {
  /** Stops retrying and waits for the attempt under way. */
  stop(): Promise<void>;
}

/**
 * ensureLocalCloud in the background, over the same cloud and account services the API uses (so the account's
 * validation job starts as for any account). The dispatcher starts serving without waiting for it.
 */
export function connectLocalCloudInBackground(deps: {
  config: Pick<Config, "dataDir" | "localCloud" | "provisioning" | "discovery">;
  db: ProvisioningDb;
  jobs: AccountJobs;
  km: () => CredentialStore;
  log: Logger;
  now: () => Date;
}): BackgroundBootstrap {
  const { config } = deps;
  const stopping = new AbortController();
  const clouds = createCloudService(deps.db, { allowInsecure: config.provisioning.allowInsecureEndpoints, allowLinkLocal: config.provisioning.allowLinkLocalEndpoints });
  const accounts = createAccountService(deps.db, lazyCredentialStore(deps.km), deps.jobs, { discoveryIntervalMs: config.discovery.intervalMs, now: deps.now });
  const running = ensureLocalCloud({ dataDir: config.dataDir, catalogFile: config.localCloud.catalogFile, clouds, accounts, log: deps.log, signal: stopping.signal }).catch((err: unknown) => {
    if (!stopping.signal.aborted) deps.log.warn({ err: errorSummary(err) }, "the local cloud is not connected");
  });
  return {
    async stop() {
      stopping.abort();
      await running;
    },
  };
}
