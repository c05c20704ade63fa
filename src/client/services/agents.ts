// The client's side of dispatcher/v1/agents.proto: a server's agent, commands run through it, fleet commands.
import { GetServerAgentRequest, RunFleetCommandRequest, RunServerScriptRequest, ServerAgentServiceService } from "../../gen/proto/dispatcher/v1/agents.js";

export const agents = { definition: ServerAgentServiceService, requests: { getServerAgent: GetServerAgentRequest, runServerScript: RunServerScriptRequest, runFleetCommand: RunFleetCommandRequest } };
