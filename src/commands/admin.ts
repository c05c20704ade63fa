// `dispatcher admin …`: tasks that act on the provisioning database directly, for bootstrapping and recovery.
import { createApiKeyForEmail } from "../iam/api-keys/keys.js";
import { checkDatabase, createProvisioningClient } from "../db/clients.js";
import { InvalidArgumentError } from "../errors.js";
import { isRole, ROLES } from "../iam/roles.js";
import { setup, type CommandOptions } from "./common.js";

export interface CreateKeyOptions extends CommandOptions {
  email: string;
  role: string;
  service: boolean;
  name: string;
}

export async function runCreateKey(options: CreateKeyOptions): Promise<number> {
  const { config } = await setup(options);
  if (!isRole(options.role)) throw InvalidArgumentError.field("role", `one of ${ROLES.join(", ")}`);
  await checkDatabase(config.provisioning.url);
  const db = createProvisioningClient(config.provisioning.url, 1);
  try {
    const key = await createApiKeyForEmail(db, { email: options.email, role: options.role, kind: options.service ? "service" : "user", name: options.name });
    process.stdout.write(`${key.secret}\n`);
    process.stderr.write(`API key ${key.id} created for ${options.email}; the secret above is shown only once.\n`);
    return 0;
  } finally {
    await db.$disconnect();
  }
}
