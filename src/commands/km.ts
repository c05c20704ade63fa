// `dispatcher km generate-key|dev-certs|rotate|rewrap`: KM's keys and certificates, and the rotation procedure.
import { InvalidArgumentError as CommanderInvalidArgument, type Command } from "commander";
import type { KmClient } from "../km/client.js";
import { progress, setup, type CommandOptions } from "./common.js";

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) throw new CommanderInvalidArgument("expected a whole number, 1 or more");
  return n;
}

/** Prints a new 32-byte key as <version>:<base64> on stdout (nothing else there, so it can be captured). */
export async function runGenerateKey(options: { keyVersion: number }): Promise<number> {
  const { generateKeyText } = await import("../km/keys.js");
  process.stdout.write(`${generateKeyText(options.keyVersion)}\n`);
  process.stderr.write(
    "A new random 32-byte key (shown once). As a master key: append it to encryption.masterKeys " +
      "(DISPATCHER_ENCRYPTION_MASTER_KEYS, comma separated) on every KM instance, then `dispatcher km rotate`. " +
      "As the channel key: set encryption.kmChannelKey on KM and on its clients.\n",
  );
  return 0;
}

export async function runDevCerts(options: CommandOptions & { force: boolean; serverName: string[] }): Promise<number> {
  const { config } = await setup(options);
  const { ensureDevCerts } = await import("../km/dev-files.js");
  const { paths, written } = ensureDevCerts(config.dataDir, { force: options.force, serverNames: options.serverName });
  for (const file of written) progress(`wrote ${file}`);
  progress(written.length === 0 ? `development certificates already present under ${paths.tlsDir} (--force replaces them)` : `development CA and certificates written under ${paths.tlsDir}: for development only`);
  return 0;
}

async function withAdminClient<T>(options: CommandOptions & { identity: string }, fn: (km: KmClient) => Promise<T>): Promise<T> {
  const { config } = await setup(options);
  const { createKmClientFromConfig } = await import("../km/client.js");
  const km = createKmClientFromConfig(config, options.identity);
  try {
    return await fn(km);
  } finally {
    km.close();
  }
}

export function addKmCommands(program: Command, configFile: () => string | undefined, setExit: (code: number) => void): void {
  const km = program.command("km").description("key management: keys, development certificates, master key rotation");

  km.command("generate-key")
    .description("print a new random 32-byte key as <version>:<base64> (a master key or the KM channel key)")
    .option("-k, --key-version <n>", "version to label the key with", positiveInt, 1)
    .action(async (opts: { keyVersion: number }) => setExit(await runGenerateKey(opts)));

  km.command("dev-certs")
    .description("write a development CA, KM's server certificate and client certificates (dispatcher, worker, admin) under <dataDir>/tls")
    .option("--force", "replace existing files", false)
    .option("--server-name <name>", "another DNS name or IP for KM's certificate (repeatable)", (v: string, prev: string[]) => [...prev, v], [] as string[])
    .action(async (opts: { force: boolean; serverName: string[] }) => setExit(await runDevCerts({ configFile: configFile(), ...opts })));

  km.command("rotate")
    .description("make the newest configured master key version the one that wraps new data keys (RotateMasterKey)")
    .option("--identity <cn>", "development client certificate to present when km.tlsCert is unset", "admin")
    .action(async (opts: { identity: string }) =>
      setExit(
        await withAdminClient({ configFile: configFile(), ...opts }, async (c) => {
          const { currentVersion } = await c.rotateMasterKey();
          process.stdout.write(`current master key version: ${currentVersion}\n`);
          return 0;
        }),
      ),
    );

  km.command("rewrap")
    .description("re-wrap every credential's data key under the current master key version (RewrapCredentials)")
    .option("--identity <cn>", "development client certificate to present when km.tlsCert is unset", "admin")
    .option("-l, --limit <n>", "at most this many records (default: all)", positiveInt)
    .action(async (opts: { identity: string; limit?: number }) =>
      setExit(
        await withAdminClient({ configFile: configFile(), ...opts }, async (c) => {
          const r = await c.rewrapCredentials({ limit: opts.limit ?? 0 }, { deadline: new Date(Date.now() + 10 * 60_000) });
          process.stdout.write(`re-wrapped ${r.rewrapped}, failed ${r.failed}, remaining ${r.remaining}; current version ${r.currentVersion}\n`);
          return r.remaining === 0 ? 0 : 1;
        }),
      ),
    );
}
