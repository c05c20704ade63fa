// SystemService over gRPC: maps the system service's answers to dispatcher.v1 messages.
import { PrincipalKind, SystemServiceService } from "../gen/proto/dispatcher/v1/system.js";
import { defineService, unary, type RpcService } from "../rpc/adapter.js";
import type { Principal } from "../iam/principal.js";
import type { SystemService } from "./service.js";

const KIND: Record<Principal["kind"], PrincipalKind> = {
  user: PrincipalKind.PRINCIPAL_KIND_USER,
  service: PrincipalKind.PRINCIPAL_KIND_SERVICE,
  agent: PrincipalKind.PRINCIPAL_KIND_AGENT,
};

export function systemHandlers(system: SystemService): RpcService {
  return defineService(SystemServiceService, {
    getServerInfo: unary(SystemServiceService.getServerInfo, async () => ({ ...system.serverInfo(), analytics: await system.analyticsStatus() })),
    whoAmI: unary(SystemServiceService.whoAmI, async (_request, ctx) => {
      const p = system.whoAmI(ctx.principal);
      return { principalId: p.id, kind: KIND[p.kind], roles: p.roles, displayName: p.displayName };
    }),
  });
}
