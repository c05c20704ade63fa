// What of users and groups a caller may see. Admins see everything; anyone else sees the groups they belong to (with
// their members, roles and accounts) and the users who share one of them — their own record whole, the others without
// email and with only the shared groups. Anything else is NOT_FOUND, as another tenant's objects are.
import type { Principal } from "./principal.js";
import { roleGrants } from "./permissions.js";

/** Who reads users and groups. */
export type IamViewer = Pick<Principal, "id" | "roles">;

/** Whoever may change users sees all of them (admins). */
export function seesEveryone(viewer: IamViewer): boolean {
  return viewer.roles.some((role) => roleGrants(role, "admin.users"));
}

/** A user as a viewer outside admin may see them, given the groups the viewer belongs to. */
export function userSeenBy<U extends { id: string; email: string; groupIds: string[] }>(user: U, viewer: IamViewer, viewerGroupIds: readonly string[]): U {
  if (user.id === viewer.id) return user;
  return { ...user, email: "", groupIds: user.groupIds.filter((g) => viewerGroupIds.includes(g)) };
}
