// Prints the configuration reference table that README.md carries (a test keeps the two in step).
import { FIELDS } from "../src/config.js";

const rows = FIELDS.map((f) => {
  const dflt = f.default === undefined ? "—" : Array.isArray(f.default) && f.default.length === 0 ? "(none)" : `\`${String(f.default)}\``;
  return `| \`${f.env}\` | \`${f.path}\` | ${f.default === "" ? "(empty)" : dflt} | ${f.doc}${f.secret ? " (secret)" : ""} |`;
});
process.stdout.write(["| variable | config file key | default | meaning |", "|---|---|---|---|", ...rows].join("\n") + "\n");
