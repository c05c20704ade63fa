// The configuration reference that README.md carries between its config-reference markers, made from FIELDS.
// `node --import tsx scripts/config-reference.ts` prints it; with --write (`npm run docs:config`) it rewrites the
// README's block. test/cli/readme.test.ts fails while the two differ, so a new field cannot go undocumented.
import { readFileSync, writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { FIELDS } from "../src/config.js";

export const README_URL = new URL("../README.md", import.meta.url);
export const START_MARKER = "<!-- config-reference:start -->";
export const END_MARKER = "<!-- config-reference:end -->";

const cell = (text: string): string => text.replace(/\|/g, "\\|");

function defaultCell(value: unknown): string {
  if (value === undefined) return "—";
  if (value === "") return "(empty)";
  if (Array.isArray(value) && value.length === 0) return "(none)";
  if (typeof value === "object" && value !== null && !Array.isArray(value) && Object.keys(value).length === 0) return "(none)";
  return `\`${cell(String(value))}\``;
}

/** The Markdown table: one row per field, with its variable, config file key, default and meaning. */
export function configReference(): string {
  const rows = FIELDS.map((f) => {
    const env = f.fallbackEnv ? `\`${f.env}\` (or \`${f.fallbackEnv}\`)` : `\`${f.env}\``;
    return `| ${env} | \`${f.path}\` | ${defaultCell(f.default)} | ${cell(f.doc)}${f.secret ? " (secret)" : ""} |`;
  });
  return ["| variable | config file key | default | meaning |", "|---|---|---|---|", ...rows].join("\n") + "\n";
}

/** The text between the README's markers (without them), or undefined when a marker is missing. */
export function readmeBlock(readme: string): string | undefined {
  const start = readme.indexOf(START_MARKER);
  const end = readme.indexOf(END_MARKER);
  if (start < 0 || end < start) return undefined;
  return readme.slice(start + START_MARKER.length, end).replace(/^\n/, "");
}

/** `readme` with its block replaced by `table`. */
export function withReference(readme: string, table: string): string {
  const start = readme.indexOf(START_MARKER);
  const end = readme.indexOf(END_MARKER);
  if (start < 0 || end < start) throw new Error(`README.md lacks the ${START_MARKER} … ${END_MARKER} markers`);
  return `${readme.slice(0, start + START_MARKER.length)}\n${table}${readme.slice(end)}`;
}

function run(argv: string[]): void {
  const table = configReference();
  if (!argv.includes("--write")) {
    process.stdout.write(table);
    return;
  }
  const readme = readFileSync(README_URL, "utf8");
  const updated = withReference(readme, table);
  if (updated !== readme) writeFileSync(README_URL, updated);
  process.stderr.write(updated === readme ? "README.md: configuration reference already up to date\n" : "README.md: configuration reference rewritten\n");
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) run(process.argv.slice(2));
