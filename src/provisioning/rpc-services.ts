// The provisioning gRPC services wired over one provisioning database, as the dispatcher role (and tests) serve them.
import type { ProvisioningDb } from "../db/clients.js";
import type { RpcService } from "../rpc/adapter.js";
import { createAccountService, lazyCredentialStore, type AccountJobs, type CredentialStore } from "./accounts/service.js";
import { createBudgetCodeService } from "./budgets/service.js";
import { createCloudService } from "./clouds/service.js";
import type { EndpointPolicy } from "./clouds/endpoint.js";
import { accountHandlers } from "./accounts/handlers.js";
import { budgetCodeHandlers } from "./budgets/handlers.js";
import { cloudHandlers } from "./clouds/handlers.js";

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
