// The client's side of dispatcher/v1/provisioning.proto: clouds, cloud accounts and budget codes.
import {
  AccountServiceService,
  BudgetCodeServiceService,
  CloudServiceService,
  CreateAccountRequest,
  CreateBudgetCodeRequest,
  CreateCloudRequest,
  DeleteBudgetCodeRequest,
  DeleteCloudRequest,
  DiscoverAccountRequest,
  GetAccountRequest,
  GetBudgetCodeRequest,
  GetCloudRequest,
  GrantBudgetCodeRequest,
  ListAccountEventsRequest,
  ListAccountsRequest,
  ListBudgetCodesRequest,
  ListCloudsRequest,
  ListSubscriptionsRequest,
  RevokeBudgetCodeRequest,
  UpdateBudgetCodeRequest,
  UpdateCloudRequest,
} from "../../gen/proto/dispatcher/v1/provisioning.js";

export const clouds = {
  definition: CloudServiceService,
  requests: { createCloud: CreateCloudRequest, getCloud: GetCloudRequest, listClouds: ListCloudsRequest, updateCloud: UpdateCloudRequest, deleteCloud: DeleteCloudRequest },
};
export const accounts = {
  definition: AccountServiceService,
  requests: {
    createAccount: CreateAccountRequest,
    getAccount: GetAccountRequest,
    listAccounts: ListAccountsRequest,
    discoverAccount: DiscoverAccountRequest,
    listSubscriptions: ListSubscriptionsRequest,
    listAccountEvents: ListAccountEventsRequest,
  },
};
export const budgetCodes = {
  definition: BudgetCodeServiceService,
  requests: {
    createBudgetCode: CreateBudgetCodeRequest,
    getBudgetCode: GetBudgetCodeRequest,
    listBudgetCodes: ListBudgetCodesRequest,
    updateBudgetCode: UpdateBudgetCodeRequest,
    deleteBudgetCode: DeleteBudgetCodeRequest,
    grantBudgetCode: GrantBudgetCodeRequest,
    revokeBudgetCode: RevokeBudgetCodeRequest,
  },
};
