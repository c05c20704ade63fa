// Where bin/ loads the program from: the compiled dist/, with plain node. A development checkout that has not been
// built (no dist/cli.js), or DISPATCHER_FROM_SOURCE=1 (the tests set it, so they never run a stale build), runs src/
// through tsx's loader instead; tsx is a development dependency, absent from a production install.
import { existsSync } from "node:fs";

const fromSource = process.env.DISPATCHER_FROM_SOURCE === "1" || !existsSync(new URL("../dist/cli.js", import.meta.url));

if (fromSource) {
  let tsx;
  try {
    tsx = await import("tsx/esm/api");
  } catch {
    process.stderr.write("dispatcher: dist/ is not built and tsx is not installed: run `npm ci` (or `npm run build`) first\n");
    process.exit(1);
  }
  tsx.register();
}

/** Imports a module of the program by its path under src/ without extension, e.g. "cli". */
export function load(module) {
  return import(fromSource ? `../src/${module}.ts` : `../dist/${module}.js`);
}
