// The client's side of dispatcher/v1/agents.proto: a server's agent and commands run through it.
import { GetServerAgentRequest, RunServerScriptRequest, ServerAgentServiceService } from "../../gen/proto/dispatcher/v1/agents.js";

export const agents = { definition: ServerAgentServiceService, requests: { getServerAgent: GetServerAgentRequest, runServerScript: RunServerScriptRequest } };
