// Splits a migration script into statements the way the mysql client does: `;` ends a statement unless it sits in a
// quoted string, a quoted identifier or a comment. Migrations are sent one statement at a time (no multipleStatements).

type Piece = { kind: "code" | "quoted" | "comment" | "end"; text: string };

/**
 * The statements of a script, trimmed; statements made only of comments and whitespace are dropped. A trigger,
 * procedure, function or event whose body is a BEGIN … END block keeps the `;` inside that block (Prisma sends a
 * migration whole, and the server parses such a body as one statement; the mysql client would need DELIMITER).
 */
export function splitSqlStatements(script: string): string[] {
  const statements: string[] = [];
  let current = "";
  // The statement's code with each quoted piece as `?`: what decides whether a `;` sits inside a compound body.
  let code = "";
  let hasCode = false;
  for (const piece of pieces(script)) {
    if (piece.kind === "end" && isOpenCompound(code)) {
      current += piece.text;
      code += piece.text;
      continue;
    }
    if (piece.kind === "end") {
      if (hasCode) statements.push(current.trim());
      current = "";
      code = "";
      hasCode = false;
      continue;
    }
    current += piece.text;
    if (piece.kind === "code") code += piece.text;
    if (piece.kind === "quoted") code += "?";
    if (piece.kind === "quoted" || (piece.kind === "code" && piece.text.trim() !== "")) hasCode = true;
    // MySQL runs /*! … */ as code, so such a "comment" alone is still a statement.
    if (piece.kind === "comment" && piece.text.startsWith("/*!")) hasCode = true;
  }
  if (hasCode) statements.push(current.trim());
  for (const s of statements) {
    if (/^DELIMITER\s/i.test(stripSqlComments(s))) throw new SyntaxError("DELIMITER is a mysql client command, not SQL; migrations cannot use it");
  }
  return statements;
}

const COMPOUND_DEFINITION = /^\s*CREATE\s+(?:OR\s+REPLACE\s+)?(?:DEFINER\s*=\s*\S+\s+)?(?:TRIGGER|PROCEDURE|(?:AGGREGATE\s+)?FUNCTION|EVENT)\b/i;

/**
 * True while `code` is a routine or trigger definition inside an unclosed BEGIN … END. BEGIN and CASE open a block;
 * END and END CASE close one (a CASE expression ends with a bare END); END IF, END LOOP, END WHILE, END REPEAT and
 * END FOR close statements that were not counted.
 */
function isOpenCompound(code: string): boolean {
  if (!COMPOUND_DEFINITION.test(code)) return false;
  let depth = 0;
  for (const m of code.matchAll(/\b(BEGIN|CASE|END)\b(?:\s+(IF|CASE|LOOP|WHILE|REPEAT|FOR)\b)?/gi)) {
    const word = (m[1] ?? "").toUpperCase();
    if (word !== "END") depth++;
    else if (m[2] === undefined || m[2].toUpperCase() === "CASE") depth--;
  }
  return depth > 0;
}

/** The statement without its comments, for log lines. */
export function stripSqlComments(statement: string): string {
  let out = "";
  for (const piece of pieces(statement)) {
    if (piece.kind === "comment" && !piece.text.startsWith("/*!")) continue;
    out += piece.kind === "end" ? ";" : piece.text;
  }
  return out.trim().replace(/\s+/g, " ");
}

function* pieces(script: string): Generator<Piece> {
  let i = 0;
  let codeStart = 0;
  const n = script.length;
  const flushCode = function* (upTo: number): Generator<Piece> {
    if (upTo > codeStart) yield { kind: "code", text: script.slice(codeStart, upTo) };
  };
  while (i < n) {
    const c = script[i];
    let end = -1;
    let kind: Piece["kind"] | undefined;
    if (c === "'" || c === '"' || c === "`") {
      kind = "quoted";
      end = endOfQuoted(script, i, c);
    } else if ((c === "-" && script[i + 1] === "-" && isSpaceOrEnd(script[i + 2])) || c === "#") {
      kind = "comment";
      const nl = script.indexOf("\n", i);
      end = nl === -1 ? n : nl;
    } else if (c === "/" && script[i + 1] === "*") {
      kind = "comment";
      const close = script.indexOf("*/", i + 2);
      if (close === -1) throw new SyntaxError(`unterminated /* comment at offset ${i}`);
      end = close + 2;
    } else if (c === ";") {
      kind = "end";
      end = i + 1;
    }
    if (kind === undefined) {
      i++;
      continue;
    }
    yield* flushCode(i);
    yield { kind, text: script.slice(i, end) };
    i = end;
    codeStart = end;
  }
  yield* flushCode(n);
}

/** `--` starts a comment only when followed by whitespace or the end of input (MySQL's rule). */
function isSpaceOrEnd(ch: string | undefined): boolean {
  return ch === undefined || /\s/.test(ch);
}

function endOfQuoted(script: string, start: number, quote: string): number {
  let i = start + 1;
  while (i < script.length) {
    const c = script[i];
    if (c === "\\" && quote !== "`") i += 2;
    else if (c === quote && script[i + 1] === quote) i += 2; // a doubled quote stands for itself
    else if (c === quote) return i + 1;
    else i++;
  }
  throw new SyntaxError(`unterminated ${quote} quote starting at offset ${start}`);
}
