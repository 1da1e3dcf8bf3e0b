/**
 * `hd ingest [FILE]`: translates a Dockerfile or a compose file into a commented hd.toml beside it,
 * then lists what it could not translate, each as FILE:LINE: why (docs/ingest.md).
 * @module
 */
import { HdError } from "../sys/errors.ts";
import { displayPath, SPEC_FILE } from "../config/parse.ts";
import { findInputs, ingest, type IngestResult, projectFiles } from "../ingest/ingest.ts";
import { formatReport } from "../ingest/model.ts";
import type { Command, Context } from "./command.ts";
import { envNameFor } from "./init.ts";

/** Where the input is: its project directory (absolute) and its name relative to it. */
export function locateInput(file: string | undefined): { dir: string; input: string } {
  if (file === undefined) {
    const cwd = Deno.cwd();
    const found = findInputs(cwd);
    if (!found.length) {
      throw new HdError(
        "Cannot ingest: no Dockerfile or compose file here",
        "name one: hd ingest path/to/Dockerfile (or compose.yaml)",
      );
    }
    return { dir: cwd, input: found[0] };
  }
  let abs: string;
  try {
    abs = Deno.realPathSync(file);
    if (!Deno.statSync(abs).isFile) throw new Error("not a file");
  } catch (e) {
    throw new HdError(
      `Cannot ingest ${file}: ${
        e instanceof Deno.errors.NotFound ? "no such file" : (e as Error).message
      }`,
      "name a Dockerfile or a compose file",
    );
  }
  const k = abs.lastIndexOf("/");
  return { dir: abs.slice(0, k) || "/", input: abs.slice(k + 1) };
}

/** Writes `text` to `file` atomically; refuses an existing file unless `force`. */
export function writeSpec(file: string, text: string, force: boolean, shown: string): void {
  const tmp = `${file}.${Deno.pid}.tmp`;
  try {
    Deno.writeTextFileSync(tmp, text);
    if (force) Deno.renameSync(tmp, file);
    else Deno.linkSync(tmp, file); // fails if hd.toml exists: never overwrite
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) {
      throw new HdError(
        `Cannot ingest ${shown}: ${displayPath(file)} already exists`,
        "pass --force to replace it, or --stdout to print the translation",
      );
    }
    throw new HdError(`Cannot ingest ${shown}: ${(e as Error).message}`, "check permissions");
  } finally {
    try {
      Deno.removeSync(tmp);
    } catch { /* renamed or gone */ }
  }
}

/** Runs the ingest for `hd ingest` and `hd init --from`; prints and returns the exit code. */
export function runIngest(
  ctx: Context,
  file: string | undefined,
  opts: { force: boolean; stdout: boolean; name?: string; target?: string; args?: string[] },
): number {
  const { dir, input } = locateInput(file);
  const shown = displayPath(`${dir}/${input}`);
  const buildArgs: Record<string, string> = {};
  for (const a of opts.args ?? []) {
    const k = a.indexOf("=");
    if (k <= 0) {
      throw new HdError(`Cannot ingest ${shown}: --build-arg ${a} is not NAME=value`, "", 2);
    }
    buildArgs[a.slice(0, k)] = a.slice(k + 1);
  }
  const r: IngestResult = ingest({
    dir,
    input,
    display: shown,
    fs: projectFiles(dir),
    name: opts.name ?? envNameFor(dir),
    nameGiven: opts.name !== undefined,
    target: opts.target ?? null,
    buildArgs,
    env: Deno.env.toObject(),
    arch: Deno.build.arch === "aarch64" ? "arm64" : "amd64",
  });
  const specFile = `${dir}/${SPEC_FILE}`;
  const rel = (f: string) => displayPath(`${dir}/${f}`);
  if (!opts.stdout) writeSpec(specFile, r.toml, opts.force, shown);
  const notes: string[] = [];
  const others = file === undefined ? findInputs(dir).filter((n) => n !== input) : [];
  ctx.out.result(
    {
      input: `${dir}/${input}`,
      kind: r.kind,
      file: opts.stdout ? null : specFile,
      toml: r.toml,
      document: r.doc,
      reports: r.reports.map((x) => ({ ...x, file: rel(x.file) })),
    },
    () => {
      const lines: string[] = [];
      if (opts.stdout) lines.push(r.toml.replace(/\n$/, ""));
      else {
        const d = r.doc;
        lines.push(
          `wrote ${displayPath(specFile)} from ${shown} (${d.build.steps.length} build step${
            d.build.steps.length === 1 ? "" : "s"
          }, ${d.services.length} service${d.services.length === 1 ? "" : "s"})`,
        );
      }
      const say = (s: string) => (opts.stdout ? notes : lines).push(s);
      if (r.reports.length) {
        say(`not translated (${r.reports.length}):`);
        for (const x of r.reports) say(`  ${formatReport({ ...x, file: rel(x.file) })}`);
      } else say("everything was translated");
      if (others.length) say(`also here: ${others.join(", ")} (hd ingest FILE to translate it)`);
      if (!opts.stdout) say("next: `hd status`, then `hd up`");
      return lines.join("\n");
    },
  );
  for (const n of notes) ctx.out.note(n); // after the document, on stderr
  return 0;
}

/** `hd ingest`. */
export const ingestCmd: Command = {
  name: "ingest",
  summary: "translate a Dockerfile or compose file into hd.toml",
  usage: "hd ingest [FILE] [--stdout] [--force] [--target STAGE] [--build-arg NAME=VALUE]...",
  options: {
    stdout: { type: "boolean", help: "print the hd.toml instead of writing it" },
    force: { type: "boolean", help: "replace an existing hd.toml" },
    target: { type: "string", help: "the Dockerfile stage to build (default: the last)" },
    "build-arg": {
      type: "string",
      multiple: true,
      help: "a Dockerfile ARG value, NAME=VALUE (repeatable)",
    },
    name: { type: "string", help: "environment name (default: compose's name or the directory's)" },
  },
  run(ctx) {
    if (ctx.positionals.length > 1) {
      throw new HdError("Cannot ingest: expected at most one FILE", "usage: hd ingest [FILE]", 2);
    }
    return runIngest(ctx, ctx.positionals[0], {
      force: ctx.values.force === true,
      stdout: ctx.values.stdout === true,
      name: typeof ctx.values.name === "string" ? ctx.values.name : undefined,
      target: typeof ctx.values.target === "string" ? ctx.values.target : undefined,
      args: (ctx.values["build-arg"] as string[] | undefined) ?? [],
    });
  },
};
