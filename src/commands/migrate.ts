// `dispatcher migrate`: create the databases if missing and apply pending migrations, with progress.
import { checkDatabase } from "../db/clients.js";
import { migrateAll } from "../db/migrate.js";
import { progress, setup, type CommandOptions } from "./common.js";

export async function runMigrate(options: CommandOptions): Promise<number> {
  const { config, log } = await setup(options);
  await checkDatabase(config.provisioning.url, { requireDatabase: false });
  const started = Date.now();
  await migrateAll(config, log, (line) => progress(line));
  progress(`migrations done in ${Date.now() - started} ms`);
  return 0;
}
