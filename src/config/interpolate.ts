/**
 * Compose's variable interpolation for hd.toml and its env files, and the env-file format.
 *
 * In every string value of hd.toml (never in keys): `${VAR}` (empty when unset), `${VAR:-default}`
 * (default when unset or empty), `${VAR-default}` (when unset), `${VAR:?message}` (an error when
 * unset or empty), `${VAR?message}` (when unset), `${VAR:+alt}` / `${VAR+alt}` (alt when set and
 * non-empty / set), defaults nesting (`${A:-${B:-x}}`), and `$$` for a literal `$`. A `$` before
 * anything else — `$VAR`, `$(cmd)`, `$1` — is left as it is, for the shell that runs the command
 * (compose would expand `$VAR` too; hd keeps the meaning commands had before interpolation
 * existed, and `hd ingest` writes `${VAR}`). Variables come from the process environment, then the
 * project's `.env` (the process wins, as in compose).
 *
 * Env files (`.env`, `env_file`) are read as compose reads them: `KEY=VALUE` lines, `export KEY=…`
 * accepted, blank lines and `#` comments skipped, ` #` starting a comment after an unquoted value,
 * `'single quotes'` literal, `"double quotes"` with `\n`, `\t`, `\\`, `\"` escapes, both quoted
 * forms spanning lines; unquoted and double-quoted values are interpolated (earlier lines of the
 * file first); a line `KEY` alone takes KEY from the process environment (skipped when unset).
 *
 * @example
 * ```ts
 * import { interpolate, parseEnvFile } from "./interpolate.ts";
 * interpolate("${PORT:-3000}", () => undefined); // "3000"
 * parseEnvFile("A=1\nB=${A}2 # note\n", () => undefined).vars; // { A: "1", B: "12" }
 * ```
 * @module
 */

/** An interpolation error: what went wrong and where in the string (0-based offset). */
export class InterpolationError extends Error {
  constructor(message: string, readonly offset: number, readonly hint: string) {
    super(message);
  }
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*/;

/** Index of the `}` closing the `${` whose body starts at `i` (nested `${…}` skipped), or -1. */
function closing(s: string, i: number): number {
  let depth = 1;
  for (let j = i; j < s.length; j++) {
    if (s[j] === "$" && s[j + 1] === "$") j++;
    else if (s[j] === "$" && s[j + 1] === "{") (depth++, j++);
    else if (s[j] === "}" && --depth === 0) return j;
  }
  return -1;
}

/** `s` with its `${…}` and `$$` resolved through `lookup` (see the module doc). */
export function interpolate(s: string, lookup: (name: string) => string | undefined): string {
  if (!s.includes("$")) return s;
  let out = "";
  let i = 0;
  while (i < s.length) {
    const d = s.indexOf("$", i);
    if (d < 0) {
      out += s.slice(i);
      break;
    }
    out += s.slice(i, d);
    if (s[d + 1] === "$") {
      out += "$";
      i = d + 2;
      continue;
    }
    if (s[d + 1] !== "{") {
      out += "$";
      i = d + 1;
      continue;
    }
    const end = closing(s, d + 2);
    if (end < 0) {
      throw new InterpolationError(
        `"\${" at offset ${d} is not closed`,
        d,
        'close it with "}", or write "$${" for a literal "${"',
      );
    }
    const body = s.slice(d + 2, end);
    const m = NAME.exec(body);
    if (!m) {
      throw new InterpolationError(
        `invalid interpolation "\${${body}}": a variable name is expected`,
        d,
        'write ${NAME}, ${NAME:-default} or ${NAME:?message}; "$$" is a literal "$"',
      );
    }
    const name = m[0];
    const rest = body.slice(name.length);
    const value = lookup(name);
    const op = /^(:-|-|:\?|\?|:\+|\+)?/.exec(rest)![0];
    if (op === "" && rest !== "") {
      throw new InterpolationError(
        `invalid interpolation "\${${body}}": unexpected "${rest[0]}" after ${name}`,
        d,
        "the forms are ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, " +
          "${NAME?message}, ${NAME:+alt}, ${NAME+alt}",
      );
    }
    const arg = () => interpolate(rest.slice(op.length), lookup);
    const set = value !== undefined, full = set && value !== "";
    switch (op) {
      case "":
        out += value ?? "";
        break;
      case ":-":
        out += full ? value : arg();
        break;
      case "-":
        out += set ? value : arg();
        break;
      case ":?":
      case "?":
        if (op === ":?" ? !full : !set) {
          const msg = arg();
          throw new InterpolationError(
            `required variable ${name} is ${set ? "empty" : "not set"}${msg ? `: ${msg}` : ""}`,
            d,
            `set ${name} in the environment or in the project's .env`,
          );
        }
        out += value;
        break;
      case ":+":
        out += full ? arg() : "";
        break;
      case "+":
        out += set ? arg() : "";
        break;
    }
    i = end + 1;
  }
  return out;
}

/** An env-file error at a 1-based line and column. */
export class EnvFileError extends Error {
  constructor(message: string, readonly line: number, readonly column: number) {
    super(message);
  }
}

const KEY = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

/**
 * The variables of an env file's text, in order (see the module doc). `lookup` resolves names the
 * file has not set itself (the process environment, then `.env`). Throws {@link EnvFileError}.
 */
export function parseEnvFile(
  text: string,
  lookup: (name: string) => string | undefined,
): { vars: Record<string, string> } {
  const vars: Record<string, string> = {};
  const look = (n: string) => Object.hasOwn(vars, n) ? vars[n] : lookup(n);
  const lines = text.replace(/\r\n/g, "\n").split("\n");
  for (let ln = 0; ln < lines.length; ln++) {
    const raw = lines[ln];
    const trimmed = raw.trimStart();
    if (trimmed === "" || trimmed.startsWith("#")) continue;
    const lineNo = ln + 1;
    let body = trimmed.replace(/^export\s+/, "");
    const eq = body.indexOf("=");
    const key = (eq < 0 ? body : body.slice(0, eq)).trim();
    const col = raw.length - trimmed.length + 1;
    if (!KEY.test(key)) {
      throw new EnvFileError(`"${key}" is not a variable name`, lineNo, col);
    }
    if (eq < 0) {
      const v = lookup(key);
      if (v !== undefined) vars[key] = v;
      continue;
    }
    body = body.slice(eq + 1).replace(/^[ \t]+/, "");
    const valCol = raw.length - body.length + 1;
    const q = body[0];
    if (q === "'" || q === '"') {
      // the value runs to the matching quote, across lines when needed
      let acc = body.slice(1);
      let endLn = ln;
      let close = findQuote(acc, q);
      while (close < 0 && endLn + 1 < lines.length) {
        endLn++;
        acc += "\n" + lines[endLn];
        close = findQuote(acc, q);
      }
      if (close < 0) throw new EnvFileError(`the ${q} quote is not closed`, lineNo, valCol);
      const after = acc.slice(close + 1).trim();
      if (after !== "" && !after.startsWith("#")) {
        throw new EnvFileError(`unexpected text after the closing ${q}: ${after}`, endLn + 1, 1);
      }
      let v = acc.slice(0, close);
      if (q === '"') {
        v = v.replace(
          /\\([nrt"\\$])/g,
          (_, c) => c === "n" ? "\n" : c === "r" ? "\r" : c === "t" ? "\t" : c === "$" ? "$$" : c,
        );
        v = interp(v, look, lineNo, valCol);
      }
      vars[key] = v;
      ln = endLn;
      continue;
    }
    const hash = body.search(/[ \t]#/);
    const v = (hash >= 0 ? body.slice(0, hash) : body).trim();
    vars[key] = interp(v, look, lineNo, valCol);
  }
  return { vars };
}

function findQuote(s: string, q: string): number {
  for (let i = 0; i < s.length; i++) {
    if (q === '"' && s[i] === "\\") {
      i++;
      continue;
    }
    if (s[i] === q) return i;
  }
  return -1;
}

function interp(
  v: string,
  look: (n: string) => string | undefined,
  line: number,
  col: number,
): string {
  try {
    return interpolate(v, look);
  } catch (e) {
    if (e instanceof InterpolationError) throw new EnvFileError(e.message, line, col + e.offset);
    throw e;
  }
}

/**
 * Interpolates every string of a parsed TOML document in place (keys are left alone); `fail` is
 * called with the key path (as `services.web.command`, `build.steps[0].run`) of a bad value.
 */
export function interpolateDoc(
  doc: Record<string, unknown>,
  lookup: (name: string) => string | undefined,
  fail: (path: string, e: InterpolationError) => never,
): void {
  // an explicit stack: documents nest at most TOML_MAX_DEPTH deep, but stay iterative anyway
  const stack: [Record<string, unknown> | unknown[], string][] = [[doc, ""]];
  while (stack.length) {
    const [node, path] = stack.pop()!;
    const entries: [string | number, unknown][] = Array.isArray(node)
      ? node.map((x, i) => [i, x])
      : Object.entries(node);
    for (const [k, val] of entries) {
      const p = typeof k === "number" ? `${path}[${k}]` : path ? `${path}.${k}` : k;
      if (typeof val === "string") {
        if (!val.includes("$")) continue;
        try {
          (node as Record<string | number, unknown>)[k] = interpolate(val, lookup);
        } catch (e) {
          if (e instanceof InterpolationError) fail(p, e);
          throw e;
        }
      } else if (Array.isArray(val)) stack.push([val, p]);
      else if (typeof val === "object" && val !== null && !(val instanceof Date)) {
        stack.push([val as Record<string, unknown>, p]);
      }
    }
  }
}
