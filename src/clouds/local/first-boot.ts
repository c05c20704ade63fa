// What a local server's guest gets before its first boot, as cloud-init gives a VM: the key pair's public key in
// ~/.ssh/authorized_keys, and the user data script, which runs once, beside the image's command, when the server
// first boots. Its output goes to ~/var/log/user-data.log and its exit status to ~/var/lib/cloud/user-data.exit.
// The script is the guest's own (it lives in the guest's root, mode 0700) and is written nowhere else.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** The shell that runs the script in the background (detached from the image's process, in the server's process
 * group so that stopping the server stops it) and then becomes the image's command. Paths come as arguments. */
const WRAPPER = '( ( cd "$HOME" && "$1" > "$2" 2>&1; echo $? > "$3" ) & ) ; shift 3; exec "$@"';

export interface FirstBoot {
  publicKey: string | null;
  userData: string | null;
}

/** Prepares the guest's root; returns the argv to run in place of the image's command. */
export function prepareFirstBoot(root: string, boot: FirstBoot, argv: string[]): string[] {
  mkdirSync(root, { recursive: true, mode: 0o700 });
  if (boot.publicKey) {
    const ssh = join(root, ".ssh");
    mkdirSync(ssh, { recursive: true, mode: 0o700 });
    const file = join(ssh, "authorized_keys");
    const current = existsSync(file) ? readFileSync(file, "utf8") : "";
    if (!current.split("\n").includes(boot.publicKey)) writeFileSync(file, `${current}${boot.publicKey}\n`, { mode: 0o600 });
  }
  if (boot.userData === null) return argv;
  const cloud = join(root, "var", "lib", "cloud");
  mkdirSync(cloud, { recursive: true, mode: 0o700 });
  mkdirSync(join(root, "var", "log"), { recursive: true, mode: 0o700 });
  const script = join(cloud, "user-data");
  writeFileSync(script, boot.userData, { mode: 0o700 });
  return ["/bin/sh", "-c", WRAPPER, "dispatcher-first-boot", script, join(root, "var", "log", "user-data.log"), join(cloud, "user-data.exit"), ...argv];
}

/** "running", "exited <code>", or null when the server had no user data. */
export function userDataStatus(root: string, had: boolean): string | null {
  if (!had) return null;
  try {
    return `exited ${readFileSync(join(root, "var", "lib", "cloud", "user-data.exit"), "utf8").trim()}`;
  } catch {
    return "running";
  }
}
