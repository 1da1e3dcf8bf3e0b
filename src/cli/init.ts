/**
 * `hd init [DIR]`: writes a commented starter hd.toml. Refuses to overwrite an existing one. In a
 * directory with a Dockerfile or a compose file it says so and offers `hd init --from FILE`, which
 * runs `hd ingest FILE` instead.
 * @module
 */
import { HdError } from "../sys/errors.ts";
import { parseSpec, SPEC_FILE } from "../config/parse.ts";
import type { Command } from "./command.ts";
import { exists } from "../sys/fs.ts";
import { findInputs } from "../ingest/ingest.ts";

/** A valid environment name made from a directory name. */
export function envNameFor(dir: string): string {
  const base = dir.replace(/\/+$/, "").split("/").pop() ?? "";
  const n = base.toLowerCase().replace(/[^a-z0-9._-]+/g, "-").replace(/^[^a-z0-9]+/, "")
    .replace(/-+$/, "");
  return n || "app";
}

/** The starter hd.toml for a project directory (looks at package.json / package-lock.json). */
export function starterSpec(dir: string, name: string): string {
  const hasLock = exists(`${dir}/package-lock.json`);
  const hasPkg = exists(`${dir}/package.json`);
  const q = (s: string) => JSON.stringify(s);
  return `# hd.toml — the environment of this project. Reference: docs/hdtoml.md
# \`hd status\` shows what hd sees; \`hd lock\` writes hd.lock; \`hd up\` starts the services.

[environment]
name = ${q(name)}
# base = "debian:12"                    # OCI image to run in (omit to run on the host)
# env = { NODE_ENV = "development" }    # variables for every step, service and \`hd exec\`

[dependencies]
${hasLock ? "" : "# "}npm = { file = "package-lock.json" }  # packages pinned by an npm lockfile
# apt = ["curl", "git"]                 # Debian packages (name, name=version)
# node = "20"                           # a tool version

[build]
steps = [
  ${
    hasPkg
      ? ""
      : "# "
  }{ run = "npm ci", inputs = ["package.json", "package-lock.json"], outputs = ["node_modules"] },
  # "make",                             # a string step reruns when any tracked file changes
]
# cache = ["~/.npm"]                    # directories kept between builds

# [services.web]
# command = "node server.js"
# port = 3000                           # ready when 127.0.0.1:3000 accepts connections
# watch = ["src/**"]                    # restart when these change
# depends_on = ["db"]                   # start these first
# restart_policy = "on_failure"         # always | on_failure | never

[files]
# include = ["src/**", "package.json"]  # default: everything
exclude = ["dist", "**/*.log"]          # .git, .hd, node_modules/.cache, .DS_Store, target always are

[options]
restart_grace = "5s"                    # SIGTERM → SIGKILL delay when stopping a service
debounce = "50ms"                       # quiet time before a burst of changes is handled
`;
}

/** `hd init`. */
export const init: Command = {
  name: "init",
  summary: "write a commented starter hd.toml",
  usage: "hd init [DIR] [--name NAME] [--from FILE]",
  options: {
    name: { type: "string", help: "environment name (default: the directory's name)" },
    from: {
      type: "string",
      help: "translate this Dockerfile or compose file instead (same as hd ingest FILE)",
    },
  },
  async run(ctx) {
    if (ctx.positionals.length > 1) {
      throw new HdError("Cannot init: expected at most one DIR", "usage: hd init [DIR]", 2);
    }
    if (typeof ctx.values.from === "string") {
      if (ctx.positionals.length) {
        throw new HdError(
          "Cannot init: --from takes the file, not a DIR",
          "hd init --from path/to/Dockerfile writes hd.toml beside it",
          2,
        );
      }
      const { runIngest } = await import("./ingest.ts");
      return runIngest(ctx, ctx.values.from, {
        force: false,
        stdout: false,
        name: typeof ctx.values.name === "string" ? ctx.values.name : undefined,
      });
    }
    const dir = (ctx.positionals[0] ?? ".").replace(/\/+$/, "") || "/";
    let abs: string;
    try {
      Deno.mkdirSync(dir, { recursive: true });
      abs = Deno.realPathSync(dir);
    } catch (e) {
      throw new HdError(`Cannot init ${dir}: ${(e as Error).message}`, "check the path");
    }
    const file = `${abs}/${SPEC_FILE}`;
    if (exists(file)) {
      throw new HdError(
        `Cannot init ${dir}: ${file} already exists`,
        "edit it, or remove it first to start over",
      );
    }
    const found = findInputs(abs);
    if (found.length && !ctx.out.json && Deno.stdin.isTerminal()) {
      // offer the translation of what is here (a terminal only; scripts get the note below)
      if (confirm(`This directory has ${found.join(", ")}. Translate ${found[0]} into hd.toml?`)) {
        const { runIngest } = await import("./ingest.ts");
        return runIngest(ctx, `${abs}/${found[0]}`, {
          force: false,
          stdout: false,
          name: typeof ctx.values.name === "string" ? ctx.values.name : undefined,
        });
      }
    }
    const name = typeof ctx.values.name === "string" ? ctx.values.name : envNameFor(abs);
    const text = starterSpec(abs, name);
    parseSpec(text, file); // the starter must itself be valid (and --name too)
    const tmp = `${file}.${Deno.pid}.tmp`;
    try {
      Deno.writeTextFileSync(tmp, text);
      Deno.linkSync(tmp, file); // fails if hd.toml appeared meanwhile: never overwrite
    } catch (e) {
      if (e instanceof Deno.errors.AlreadyExists) {
        throw new HdError(`Cannot init ${dir}: ${file} already exists`, "edit it instead");
      }
      throw new HdError(`Cannot init ${dir}: ${(e as Error).message}`, "check permissions");
    } finally {
      try {
        Deno.removeSync(tmp);
      } catch { /* gone */ }
    }
    ctx.out.result(
      { file, name, ingestable: found },
      () =>
        `wrote ${file} (environment "${name}")\nnext: edit it, then \`hd status\`` +
        (found.length
          ? `\nthis directory has ${found.join(", ")}: \`hd init --from ${
            found[0]
          }\` (after removing hd.toml) translates it instead`
          : ""),
    );
    return 0;
  },
};
