// proto ⇄ domain for ServerService, and the field rules its handlers validate requests with.
import {
  AgentState as AgentStateEnum,
  type Image,
  type Product,
  type Server as ServerMessage,
  type ServerEvent as ServerEventMessage,
  ServerOrigin as ServerOriginEnum,
  ServerState as ServerStateEnum,
} from "../gen/proto/dispatcher/v1/servers.js";
import { etagOf } from "../iam/etag.js";
import type { AgentState, CatalogImage, CatalogProduct, Server, ServerEvent, ServerOrigin, ServerState } from "./model.js";

export { ID_RULES } from "../rpc/validate.js";
export { BUDGET_CODE_RULES, DATA_CENTER_RULES, REGION_ID_RULES } from "../provisioning/mapper.js";
export { IDEMPOTENCY_KEY_RULES } from "../jobs/mapper.js";

/** Catalog ids are the provider's (instance types, AMI ids, local image names): printable, bounded by their columns. */
export const PRODUCT_ID_RULES = { max: 128, pattern: /^[^\p{Cc}\s]+$/u, patternHint: "printable characters without spaces" };
export const IMAGE_ID_RULES = { max: 255, pattern: /^[^\p{Cc}\s]+$/u, patternHint: "printable characters without spaces" };
export const SERVER_NAME_RULES = { max: 128, pattern: /^[\p{L}\p{N}][\p{L}\p{N} _.:-]*$/u, patternHint: "letters, digits, space, _ . : - (starting with a letter or digit)" };
/** The data_center column is VARCHAR(64). */
export const LAUNCH_DATA_CENTER_RULES = { max: 64, pattern: /^[^\p{Cc}]+$/u, patternHint: "printable characters only" };

export const STATE_TO_PROTO: Readonly<Record<ServerState, ServerStateEnum>> = {
  PENDING: ServerStateEnum.SERVER_STATE_PENDING,
  RUNNING: ServerStateEnum.SERVER_STATE_RUNNING,
  STOPPING: ServerStateEnum.SERVER_STATE_STOPPING,
  STOPPED: ServerStateEnum.SERVER_STATE_STOPPED,
  REBOOTING: ServerStateEnum.SERVER_STATE_REBOOTING,
  TERMINATING: ServerStateEnum.SERVER_STATE_TERMINATING,
  TERMINATED: ServerStateEnum.SERVER_STATE_TERMINATED,
};

export const STATE_FROM_PROTO: Readonly<Partial<Record<number, ServerState>>> = Object.fromEntries(Object.entries(STATE_TO_PROTO).map(([k, v]) => [v, k as ServerState]));

const ORIGIN_TO_PROTO: Readonly<Record<ServerOrigin, ServerOriginEnum>> = {
  LAUNCHED: ServerOriginEnum.SERVER_ORIGIN_LAUNCHED,
  DISCOVERED: ServerOriginEnum.SERVER_ORIGIN_DISCOVERED,
};

const AGENT_TO_PROTO: Readonly<Record<AgentState, AgentStateEnum>> = {
  NONE: AgentStateEnum.AGENT_STATE_NONE,
  PENDING: AgentStateEnum.AGENT_STATE_PENDING,
  CONNECTED: AgentStateEnum.AGENT_STATE_CONNECTED,
  UNREACHABLE: AgentStateEnum.AGENT_STATE_UNREACHABLE,
};

export const AGENT_FROM_PROTO: Readonly<Partial<Record<number, AgentState>>> = Object.fromEntries(Object.entries(AGENT_TO_PROTO).map(([k, v]) => [v, k as AgentState]));

export function serverToProto(s: Server): ServerMessage {
  return {
    id: s.id,
    accountId: s.accountId,
    regionId: s.regionId,
    dataCenter: s.dataCenter,
    providerId: s.providerId ?? "",
    name: s.name,
    productId: s.productId,
    imageId: s.imageId,
    budgetCode: s.budgetCode,
    state: STATE_TO_PROTO[s.state],
    origin: ORIGIN_TO_PROTO[s.origin],
    addresses: { private: s.addresses.private, public: s.addresses.public },
    agentState: AGENT_TO_PROTO[s.agentState],
    hourlyPriceMicros: s.hourlyPriceMicros.toString(),
    launchTime: s.launchedAt ?? undefined,
    terminateTime: s.terminatedAt ?? undefined,
    stateChangeTime: s.stateChangedAt,
    details: s.details,
    tags: s.tags,
    etag: etagOf(s.version),
    createTime: s.createdAt,
    updateTime: s.updatedAt,
  };
}

export function serverEventToProto(e: ServerEvent): ServerEventMessage {
  return {
    id: e.id.toString(),
    serverId: e.serverId,
    type: e.type,
    fromState: e.fromState ? STATE_TO_PROTO[e.fromState] : ServerStateEnum.SERVER_STATE_UNSPECIFIED,
    toState: e.toState ? STATE_TO_PROTO[e.toState] : ServerStateEnum.SERVER_STATE_UNSPECIFIED,
    jobId: e.jobId ?? "",
    message: e.message,
    createTime: e.createdAt,
  };
}

export function productToProto(p: CatalogProduct): Product {
  return { id: p.id, name: p.name, cpus: p.cpus, memoryMb: p.memoryMb, diskGb: p.diskGb, hourlyPriceMicros: p.hourlyPriceMicros.toString(), accruesWhenStopped: p.accruesWhenStopped };
}

export function imageToProto(i: CatalogImage): Image {
  return { id: i.id, name: i.name, platform: i.platform };
}
