/**
 * Words of a Dockerfile line with BuildKit's meaning: splitting into words (quotes and the escape
 * character kept until expansion), variable expansion (`$V`, `${V}`, `${V:-w}`, `${V-w}`,
 * `${V:+w}`, `${V+w}`, `${V:?m}`, `${V#p}`, `${V##p}`, `${V%p}`, `${V%%p}`, `${V/p/r}`,
 * `${V//p/r}`) with quote removal, and a POSIX shell quoter for turning argument vectors back into
 * `sh -c` strings. Pure functions; errors are thrown as {@link WordError}.
 *
 * @example
 * ```ts
 * import { expandWord, shellQuote } from "./words.ts";
 * expandWord("${A:-x}/b", { }); // "x/b"
 * shellQuote(["node", "my app.js"]); // "node 'my app.js'"
 * ```
 * @module
 */

/** A problem in one word (the caller adds the file and line). */
export class WordError extends Error {}

/**
 * Splits `s` into words on unquoted blanks. Quotes and escapes stay in the words (so that
 * {@link expandWord} sees them); an unterminated quote is an error.
 */
export function splitWords(s: string, escape = "\\"): string[] {
  const out: string[] = [];
  let cur = "";
  let inWord = false;
  let quote = "";
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (quote) {
      cur += c;
      if (c === escape && quote === '"' && i + 1 < s.length) cur += s[++i];
      else if (c === quote) quote = "";
      continue;
    }
    if (c === " " || c === "\t" || c === "\n" || c === "\r") {
      if (inWord) out.push(cur);
      cur = "";
      inWord = false;
      continue;
    }
    inWord = true;
    cur += c;
    if (c === escape && i + 1 < s.length) cur += s[++i];
    else if (c === '"' || c === "'") quote = c;
  }
  if (quote) throw new WordError(`unterminated ${quote === '"' ? "double" : "single"} quote`);
  if (inWord) out.push(cur);
  return out;
}

/** A shell glob pattern (`*`, `?`, `[...]`) as a regular expression source (no anchors). */
export function globSource(p: string): string {
  let re = "";
  for (let i = 0; i < p.length; i++) {
    const c = p[i];
    if (c === "*") re += "[\\s\\S]*";
    else if (c === "?") re += "[\\s\\S]";
    else if (c === "[") {
      const end = p.indexOf("]", i + 2);
      if (end < 0) re += "\\[";
      else {
        let body = p.slice(i + 1, end);
        if (body[0] === "!") body = "^" + body.slice(1);
        re += "[" + body.replace(/\\/g, "\\\\") + "]";
        i = end;
      }
    } else if (c === "\\" && i + 1 < p.length) re += escapeRe(p[++i]);
    else re += escapeRe(c);
  }
  return re;
}

function escapeRe(c: string): string {
  return c.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

/** Removes the shortest (`longest` false) or longest prefix (or suffix) matching `pat`. */
function trimPattern(v: string, pat: string, suffix: boolean, longest: boolean): string {
  const re = new RegExp(suffix ? `^${globSource(pat)}$` : `^${globSource(pat)}$`);
  if (!suffix) {
    const lens = [...Array(v.length + 1).keys()];
    if (longest) lens.reverse();
    for (const n of lens) if (re.test(v.slice(0, n))) return v.slice(n);
    return v;
  }
  const starts = [...Array(v.length + 1).keys()];
  if (!longest) starts.reverse();
  for (const n of starts) if (re.test(v.slice(n))) return v.slice(0, n);
  return v;
}

function replacePattern(v: string, pat: string, rep: string, all: boolean): string {
  if (pat === "") return v;
  const re = new RegExp(globSource(pat), all ? "g" : "");
  return v.replace(re, () => rep);
}

/** Variables visible to an expansion: a name maps to its value; absent names are unset. */
export type Vars = Readonly<Record<string, string>>;

/**
 * Expands `$NAME`, `${NAME}` and the `${NAME<op>word}` forms in `raw`, removing quotes and the
 * escape character as BuildKit's shell lexer does (single quotes: literal; double quotes: expand).
 */
export function expandWord(raw: string, vars: Vars, escape = "\\"): string {
  const r = expandAt(raw, 0, vars, escape, "");
  return r.text;
}

/** Expands inside `raw` from `i` until `stop` (a closing `}`) at depth 0; returns the end index. */
function expandAt(
  raw: string,
  i: number,
  vars: Vars,
  escape: string,
  stop: string,
): { text: string; end: number } {
  let out = "";
  while (i < raw.length) {
    const c = raw[i];
    if (stop && c === stop) return { text: out, end: i };
    if (c === escape) {
      if (i + 1 < raw.length) out += raw[i + 1];
      i += 2;
      continue;
    }
    if (c === "'") {
      const end = raw.indexOf("'", i + 1);
      if (end < 0) throw new WordError("unterminated single quote");
      out += raw.slice(i + 1, end);
      i = end + 1;
      continue;
    }
    if (c === '"') {
      i++;
      while (i < raw.length && raw[i] !== '"') {
        if (raw[i] === escape && i + 1 < raw.length && '"$`\\'.includes(raw[i + 1])) {
          out += raw[i + 1];
          i += 2;
        } else if (raw[i] === escape && i + 1 < raw.length && raw[i + 1] === escape) {
          out += escape;
          i += 2;
        } else if (raw[i] === "$") {
          const v = variable(raw, i, vars, escape);
          out += v.text;
          i = v.end;
        } else out += raw[i++];
      }
      if (i >= raw.length) throw new WordError("unterminated double quote");
      i++;
      continue;
    }
    if (c === "$") {
      const v = variable(raw, i, vars, escape);
      out += v.text;
      i = v.end;
      continue;
    }
    out += c;
    i++;
  }
  if (stop) throw new WordError("missing '}' in a ${...} expansion");
  return { text: out, end: i };
}

/** One `$…` at `raw[i]`; returns its value and the index after it. */
function variable(
  raw: string,
  i: number,
  vars: Vars,
  escape: string,
): { text: string; end: number } {
  const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(raw.slice(i + 1));
  if (m) return { text: vars[m[0]] ?? "", end: i + 1 + m[0].length };
  if (raw[i + 1] !== "{") return { text: "$", end: i + 1 };
  const n = /^[A-Za-z_][A-Za-z0-9_]*/.exec(raw.slice(i + 2));
  if (!n) throw new WordError(`bad substitution at "${raw.slice(i, i + 12)}"`);
  const name = n[0];
  let j = i + 2 + name.length;
  const value = vars[name];
  const set = value !== undefined;
  if (raw[j] === "}") return { text: value ?? "", end: j + 1 };
  const op = /^(:-|:\+|:\?|-|\+|\?|##|#|%%|%|\/\/|\/)/.exec(raw.slice(j));
  if (!op) throw new WordError(`unsupported modifier in \${${name}${raw.slice(j, j + 3)}…}`);
  j += op[0].length;
  const word = expandAt(raw, j, vars, escape, "}");
  const w = word.text;
  const end = word.end + 1;
  const nonEmpty = set && value !== "";
  let text: string;
  switch (op[0]) {
    case ":-":
      text = nonEmpty ? value! : w;
      break;
    case "-":
      text = set ? value! : w;
      break;
    case ":+":
      text = nonEmpty ? w : "";
      break;
    case "+":
      text = set ? w : "";
      break;
    case ":?":
    case "?":
      if (op[0] === ":?" ? !nonEmpty : !set) {
        throw new WordError(`${name}: ${w || "is not set"}`);
      }
      text = value!;
      break;
    case "#":
    case "##":
      text = trimPattern(value ?? "", w, false, op[0] === "##");
      break;
    case "%":
    case "%%":
      text = trimPattern(value ?? "", w, true, op[0] === "%%");
      break;
    default: {
      // ${V/p/r}, ${V//p/r}: the word holds "p/r"
      const k = w.indexOf("/");
      const pat = k < 0 ? w : w.slice(0, k);
      const rep = k < 0 ? "" : w.slice(k + 1);
      text = replacePattern(value ?? "", pat, rep, op[0] === "//");
    }
  }
  return { text, end };
}

/** Quotes one word for a POSIX shell (`sh -c`): bare when it is safe, else single-quoted. */
export function shellQuoteWord(w: string): string {
  if (w !== "" && /^[A-Za-z0-9_@%+=:,./-]+$/.test(w)) return w;
  return "'" + w.replace(/'/g, `'"'"'`) + "'";
}

/** An argument vector as one `sh -c` string: each word quoted as needed, joined by spaces. */
export function shellQuote(argv: readonly string[]): string {
  return argv.map(shellQuoteWord).join(" ");
}
