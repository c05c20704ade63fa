// proto ⇄ domain for the IAM services, and the field rules their handlers validate requests with.
import { type ApiKey, type Group, type User, UserKind, UserStatus } from "../../gen/proto/dispatcher/v1/iam.js";
import type { Violations } from "../validate.js";
import type { ApiKeyView } from "../../iam/api-keys/service.js";
import type { GroupView } from "../../iam/group-service.js";
import { isRole, ROLES, type Role } from "../../iam/roles.js";
import type { UserView } from "../../iam/user-service.js";

export const EMAIL_RULES = { max: 255, pattern: /^[^\s@\p{Cc}]+@[^\s@\p{Cc}]+$/u, patternHint: "an email address (user@domain)" };
/** Printable text: no control characters. */
export const NAME_RULES = { max: 255, pattern: /^[^\p{Cc}]+$/u, patternHint: "printable characters only" };
export const DESCRIPTION_RULES = { max: 1024, min: 0, pattern: /^[^\p{Cc}]*$/u, patternHint: "printable characters only" };
export const GROUP_NAME_RULES = { max: 128, pattern: /^[\p{L}\p{N}][\p{L}\p{N} _.-]*$/u, patternHint: "letters, digits, space, _ . - (starting with a letter or digit)" };
export const KEY_NAME_RULES = { max: 255, pattern: /^[^\p{Cc}]+$/u, patternHint: "printable characters only" };
export const ACCOUNT_ID_RULES = { max: 64, pattern: /^[A-Za-z0-9_.:-]+$/, patternHint: "letters, digits, _ . : - only" };
const MAX_LIST = 1000;
const MAX_ROLES = 16;
/** The furthest in the future an API key may expire (about ten years). */
const MAX_KEY_LIFETIME_MS = 10 * 366 * 24 * 3600 * 1000;

export const USER_KIND: Readonly<Partial<Record<number, "USER" | "SERVICE">>> = { [UserKind.USER_KIND_USER]: "USER", [UserKind.USER_KIND_SERVICE]: "SERVICE" };
export const USER_STATUS: Readonly<Partial<Record<number, "ACTIVE" | "DISABLED">>> = { [UserStatus.USER_STATUS_ACTIVE]: "ACTIVE", [UserStatus.USER_STATUS_DISABLED]: "DISABLED" };

/** A list of built-in role names, without duplicates. */
export function roleList(v: Violations, field: string, values: string[]): Role[] {
  if (values.length > MAX_ROLES) {
    v.add(field, `at most ${MAX_ROLES} entries`);
    return [];
  }
  const out: Role[] = [];
  values.forEach((value, i) => {
    if (isRole(value)) out.push(value);
    else v.add(`${field}[${i}]`, `must be one of ${ROLES.join(", ")}`);
  });
  return [...new Set(out)];
}

export function accountIdList(v: Violations, field: string, values: string[]): string[] {
  if (values.length > MAX_LIST) {
    v.add(field, `at most ${MAX_LIST} entries`);
    return [];
  }
  return [...new Set(values.map((value, i) => v.string(`${field}[${i}]`, value, ACCOUNT_ID_RULES)))];
}

/** update_mask paths, each one of `allowed`; at least one. */
export function expiry(v: Violations, value: Date | undefined, now: Date): Date | null {
  if (!value) return null;
  const t = value.getTime();
  if (!Number.isFinite(t) || t <= now.getTime() || t > now.getTime() + MAX_KEY_LIFETIME_MS) {
    v.add("expire_time", "must be in the future and within ten years");
    return null;
  }
  return value;
}

export function userToProto(u: UserView): User {
  return {
    id: u.id,
    email: u.email,
    name: u.name,
    kind: u.kind === "SERVICE" ? UserKind.USER_KIND_SERVICE : UserKind.USER_KIND_USER,
    status: u.status === "DISABLED" ? UserStatus.USER_STATUS_DISABLED : UserStatus.USER_STATUS_ACTIVE,
    roles: u.roles,
    effectiveRoles: u.effectiveRoles,
    groupIds: u.groupIds,
    etag: u.etag,
    createTime: u.createdAt,
    updateTime: u.updatedAt,
  };
}

export function groupToProto(g: GroupView): Group {
  return { id: g.id, name: g.name, description: g.description, memberUserIds: g.memberUserIds, roles: g.roles, accountIds: g.accountIds, etag: g.etag, createTime: g.createdAt, updateTime: g.updatedAt };
}

export function apiKeyToProto(k: ApiKeyView): ApiKey {
  return {
    id: k.id,
    userId: k.userId,
    name: k.name,
    prefix: k.prefix,
    createTime: k.createdAt,
    lastUseTime: k.lastUsedAt ?? undefined,
    expireTime: k.expiresAt ?? undefined,
    revokeTime: k.revokedAt ?? undefined,
  };
}
