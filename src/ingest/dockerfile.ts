/**
 * The Dockerfile tokenizer: parser directives (`# syntax`, `# escape`), comments, line
 * continuations (comment and empty lines inside them dropped, so a comment never reaches a
 * command), heredocs (`<<EOF`, `<<-EOF`, quoted delimiters, several on one line), flags
 * (`--mount=…`) and the JSON (exec) form. It gives tokens and lines only; the meaning (expansion,
 * stages, scoping) is in dockerfile_meaning.ts.
 *
 * Hand-written rather than `dockerfile-ast` 0.7.1: that parser returns heredoc bodies as arguments
 * and pulls two language-server packages (measured; see the commit adding `yaml`).
 *
 * @example
 * ```ts
 * import { tokenizeDockerfile } from "./dockerfile.ts";
 * const df = tokenizeDockerfile("FROM debian\nRUN echo hi\n");
 * console.log(df.instructions[1].keyword, df.instructions[1].args); // RUN echo hi
 * ```
 * @module
 */
import { didYouMean } from "../config/suggest.ts";

/** Every instruction of the Dockerfile reference. */
export const INSTRUCTIONS = [
  "FROM",
  "RUN",
  "CMD",
  "LABEL",
  "MAINTAINER",
  "EXPOSE",
  "ENV",
  "ADD",
  "COPY",
  "ENTRYPOINT",
  "VOLUME",
  "USER",
  "WORKDIR",
  "ARG",
  "ONBUILD",
  "STOPSIGNAL",
  "HEALTHCHECK",
  "SHELL",
] as const;

/** Instructions whose arguments may start with `--flag` options. */
const FLAGGED = new Set(["FROM", "RUN", "COPY", "ADD", "HEALTHCHECK"]);
/** Instructions that may carry heredocs (BuildKit). */
const HEREDOC = new Set(["RUN", "COPY", "ADD"]);
/** Instructions with a JSON (exec) form. */
const JSON_FORM = new Set(["RUN", "CMD", "ENTRYPOINT", "SHELL", "VOLUME", "COPY", "ADD"]);

/** A broken Dockerfile: the line and a message (the caller names the file). */
export class DockerfileError extends Error {
  constructor(readonly line: number, message: string, readonly hint: string) {
    super(message);
  }
}

/** One heredoc: `<<[-]["']NAME["']` and the lines up to NAME. */
export interface Heredoc {
  name: string;
  /** The body, each line ending in a newline; leading tabs removed for `<<-`. */
  body: string;
  /** `<<-`: leading tabs stripped. */
  strip: boolean;
  /** A quoted delimiter: no expansion in the body. */
  quoted: boolean;
  /** The line of the `<<NAME` token. */
  line: number;
}

/** One `--name=value` flag (value null for a bare `--link`). */
export interface Flag {
  name: string;
  value: string | null;
}

/** One instruction, with its lines. */
export interface Instruction {
  /** Upper-case keyword. */
  keyword: string;
  /** First and last physical line (1-based), heredoc bodies included in `endLine`. */
  line: number;
  endLine: number;
  /** Leading flags, in order. */
  flags: Flag[];
  /** The arguments after the flags, continuations joined (comment lines removed). */
  args: string;
  /** The exec form's words when the arguments are a JSON array of strings, else null. */
  json: string[] | null;
  heredocs: Heredoc[];
}

/** A tokenized Dockerfile. */
export interface DockerfileTokens {
  /** The escape character (`\` or `` ` ``). */
  escape: string;
  /** The `# syntax=` directive, or null. */
  syntax: string | null;
  instructions: Instruction[];
}

const DIRECTIVE = /^#\s*([A-Za-z][A-Za-z0-9]*)\s*=\s*(.*?)\s*$/;
const HEREDOC_RE = /(?<!<)<<(-?)(["']?)([A-Za-z_][A-Za-z0-9_.-]*)\2/g;

/** Heredoc openers in a (joined) shell-form line, outside single and double quotes. */
function heredocOpeners(s: string): { strip: boolean; quoted: boolean; name: string }[] {
  const out: { strip: boolean; quoted: boolean; name: string }[] = [];
  // blank out quoted text so that `echo "<<x"` opens nothing
  const masked = s.replace(
    /(?<!<<-?)(?:'[^']*'|"(?:[^"\\]|\\.)*")/g,
    (m) => " ".repeat(m.length),
  );
  for (const m of masked.matchAll(HEREDOC_RE)) {
    const orig = s.slice(m.index!, m.index! + m[0].length);
    const mm = /^<<(-?)(["']?)([A-Za-z_][A-Za-z0-9_.-]*)\2$/.exec(orig);
    if (mm) out.push({ strip: mm[1] === "-", quoted: mm[2] !== "", name: mm[3] });
  }
  return out;
}

/** Splits leading `--flag[=value]` words off an instruction's arguments. */
export function splitFlags(args: string): { flags: Flag[]; rest: string } {
  const flags: Flag[] = [];
  let rest = args.trimStart();
  for (;;) {
    const m = /^--([A-Za-z][A-Za-z0-9-]*)(?:=("[^"]*"|'[^']*'|\S*))?(?:\s+|$)/.exec(rest);
    if (!m) break;
    let v = m[2] ?? null;
    if (v && /^["'].*["']$/.test(v)) v = v.slice(1, -1);
    flags.push({ name: m[1].toLowerCase(), value: v });
    rest = rest.slice(m[0].length);
  }
  return { flags, rest };
}

/** Parses the exec form: a JSON array of strings, null when `s` is not one. */
function parseJson(s: string): { ok: string[] } | { bad: string } | null {
  const t = s.trim();
  if (!t.startsWith("[")) return null;
  if (!t.endsWith("]")) return null; // `RUN [ -f x ] && …` is shell form
  try {
    const v = JSON.parse(t);
    if (Array.isArray(v) && v.every((x) => typeof x === "string")) return { ok: v };
    return { bad: "the JSON array must hold only strings" };
  } catch {
    return {
      bad: /'/.test(t)
        ? "its strings need double quotes, not single quotes"
        : "it is not a valid JSON array of strings",
    };
  }
}

/** Tokenizes a Dockerfile. Throws {@link DockerfileError} on broken input. */
export function tokenizeDockerfile(text: string): DockerfileTokens {
  const lines = text.replace(/\r\n/g, "\n").split("\n");
  let escape = "\\";
  let syntax: string | null = null;
  let i = 0;
  // parser directives: only at the very top, before any other line
  for (; i < lines.length; i++) {
    const m = DIRECTIVE.exec(lines[i]);
    if (!m) break;
    const key = m[1].toLowerCase();
    if (key === "escape") {
      if (m[2] !== "\\" && m[2] !== "`") {
        throw new DockerfileError(
          i + 1,
          `invalid escape directive "${m[2]}"`,
          "the escape character is \\ or `",
        );
      }
      escape = m[2];
    } else if (key === "syntax") syntax = m[2];
    else if (key !== "check") break; // an unknown directive is a comment and ends the directives
  }
  const instructions: Instruction[] = [];
  const contRe = new RegExp(`${escape === "\\" ? "\\\\" : "`"}[ \\t]*$`);
  while (i < lines.length) {
    const line = lines[i];
    const t = line.trim();
    if (t === "" || t.startsWith("#")) {
      i++;
      continue;
    }
    const start = i + 1;
    let joined = "";
    let cur = line;
    for (;;) {
      if (contRe.test(cur)) {
        joined += cur.replace(contRe, "");
        i++;
        // skip comment and empty lines inside a continuation
        while (i < lines.length && (/^\s*#/.test(lines[i]) || lines[i].trim() === "")) i++;
        if (i >= lines.length) break;
        cur = lines[i];
        continue;
      }
      joined += cur;
      i++;
      break;
    }
    const m = /^\s*(\S+)\s*([\s\S]*)$/.exec(joined)!;
    const kw = m[1].toUpperCase();
    if (!(INSTRUCTIONS as readonly string[]).includes(kw)) {
      const s = didYouMean(kw, INSTRUCTIONS);
      throw new DockerfileError(
        start,
        `unknown instruction ${m[1]}`,
        s ? `did you mean ${s}?` : `instructions are ${INSTRUCTIONS.join(", ")}`,
      );
    }
    let body = m[2].trim();
    let flags: Flag[] = [];
    if (FLAGGED.has(kw)) ({ flags, rest: body } = splitFlags(body));
    let json: string[] | null = null;
    if (JSON_FORM.has(kw)) {
      const j = parseJson(body);
      if (j && "bad" in j) {
        throw new DockerfileError(
          start,
          `${kw} has a malformed JSON (exec) form: ${j.bad}`,
          `write ["executable", "arg"] with double quotes, or drop the brackets for the shell form`,
        );
      }
      if (j) json = j.ok;
    }
    if (kw === "SHELL" && !json) {
      throw new DockerfileError(
        start,
        "SHELL needs the JSON form",
        'write SHELL ["/bin/bash", "-c"]',
      );
    }
    const heredocs: Heredoc[] = [];
    if (HEREDOC.has(kw) && !json) {
      for (const h of heredocOpeners(body)) {
        const at = start;
        let b = "";
        let found = false;
        while (i < lines.length) {
          let l = lines[i++];
          if (h.strip) l = l.replace(/^\t+/, "");
          if (l === h.name) {
            found = true;
            break;
          }
          b += l + "\n";
        }
        if (!found) {
          throw new DockerfileError(
            at,
            `unterminated heredoc <<${h.name} (no line "${h.name}" before the end of the file)`,
            `end the heredoc with a line holding only ${h.name}`,
          );
        }
        heredocs.push({ name: h.name, body: b, strip: h.strip, quoted: h.quoted, line: at });
      }
    }
    instructions.push({ keyword: kw, line: start, endLine: i, flags, args: body, json, heredocs });
  }
  return { escape, syntax, instructions };
}
