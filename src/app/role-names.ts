// The names of the roles one process can run, in start order, apart from the roles themselves: the command line
// checks and lists them without loading any role.
export const ROLE_NAMES = ["km", "worker", "monitor", "dispatcher"] as const;

export type RoleName = (typeof ROLE_NAMES)[number];
