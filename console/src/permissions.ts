// What the signed-in roles allow, for showing or hiding controls only: the server checks every call itself
// (src/iam/permissions.ts), so a control shown to someone without the right still ends in PERMISSION_DENIED.

/** Replaying a dead letter is a job retry: operators and admins (jobs.retry), never readers. */
export function mayReplay(roles: readonly string[]): boolean {
  return roles.includes("admin") || roles.includes("operator");
}
