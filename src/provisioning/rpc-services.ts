// The provisioning gRPC services wired over one provisioning database, as the dispatcher role (and tests) serve them.
import type { ProvisioningDb } from "../db/clients.js";
import type { RpcService } from "../rpc/adapter.js";
import { createAccountService, lazyCredentialStore, type AccountJobs, type CredentialStore } from "./account-service.js";
import { createBudgetCodeService } from "./budget-service.js";
import { createCloudService } from "./cloud-service.js";
import type { EndpointPolicy } from "./endpoint.js";
import { accountHandlers } from "./handlers-accounts.js";
import { budgetCodeHandlers, cloudHandlers } from "./handlers.js";

export interface ProvisioningServicesOptions {
  /** config.discovery.intervalMs */
  discoveryIntervalMs: number;
  now?: () => Date;
}

/**
 * CloudService, BudgetCodeService and AccountService. `km` makes the KM client account credentials are stored
 * through; it is called on the first CreateAccount (a failure there answers FAILED_PRECONDITION KM_NOT_CONFIGURED).
 * `jobs` starts the `account.discover` jobs that validate and discover accounts.
 */
export function provisioningRpcServices(db: ProvisioningDb, endpoints: EndpointPolicy, km: () => CredentialStore, jobs: AccountJobs, options: ProvisioningServicesOptions): RpcService[] {
  return [cloudHandlers(createCloudService(db, endpoints)), budgetCodeHandlers(createBudgetCodeService(db)), accountHandlers(createAccountService(db, lazyCredentialStore(km), jobs, options))];
}
