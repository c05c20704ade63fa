// What dist/ is compiled from, as one digest: every file under src/ (the generated code and the files copied beside
// the modules included) and the files that steer the compile. `npm run build` records it in dist/; the test run
// compares it with the tree's, to run its dispatcher processes from dist/ only when dist/ is that tree's build.
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";

/** Where a build records the digest of its inputs, under its output directory. */
export const INPUTS_FILE = ".inputs-sha256";

const STEERING = ["package.json", "tsconfig.json", "tsconfig.build.json", "scripts/build.mjs"];

/** Every file under `dir`, by path, in a fixed order. */
export function filesUnder(dir) {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? filesUnder(join(dir, e.name)) : [join(dir, e.name)]))
    .sort();
}

/** The digest of the inputs of a build of the package at `root`: paths and contents, in a fixed order. */
export function buildInputsDigest(root) {
  const hash = createHash("sha256");
  const paths = [...filesUnder(join(root, "src")), ...STEERING.map((p) => join(root, p)).filter((p) => existsSync(p))];
  for (const path of paths) {
    hash.update(relative(root, path)).update("\0").update(readFileSync(path)).update("\0");
  }
  return hash.digest("hex");
}

/** Whether `distDir` holds the build of the package at `root` as it is now. */
export function isCurrentBuild(root, distDir) {
  const file = join(distDir, INPUTS_FILE);
  return existsSync(join(distDir, "cli.js")) && existsSync(file) && readFileSync(file, "utf8").trim() === buildInputsDigest(root);
}
