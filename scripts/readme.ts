/**
 * Builds README.md from docs/*.md and the commands' own help (so the CLI reference cannot drift
 * from the code). Run: `deno run -A scripts/readme.ts`.
 * @module
 */
import { COMMANDS } from "../src/cli/commands.ts";

const repo = new URL("..", import.meta.url).pathname;
const read = (f: string) => {
  try {
    return Deno.readTextFileSync(`${repo}docs/${f}`).replaceAll("](../", "](");
  } catch {
    return "";
  }
};
const demote = (md: string) => md.replace(/^(#+) /gm, "#$1 ");

const cmds = await Promise.all(COMMANDS.map((c) => c.load()));
const cli = [
  "## CLI reference",
  "",
  'Every command takes `--json` (one JSON document on stdout; errors as `{"error", "hint"}`),',
  "`--store DIR` (default `$HD_HOME`, else `~/.hd`), `--debug` (stack traces) and `--help`.",
  "Errors read `error: Cannot <do what>: <why>` plus a `hint:` line; user errors exit 1, usage",
  "errors 2. Progress lines appear only on a terminal, never under CI.",
  "",
  ...cmds.flatMap((c) => [
    `### \`hd ${c.name}\` — ${c.summary}`,
    "",
    "```",
    c.usage,
    ...Object.entries(c.options).map(([k, o]) =>
      `  ${o.short ? `-${o.short}, ` : ""}--${k}${o.type === "string" ? " VALUE" : ""}  ${o.help}`
    ),
    "```",
    "",
  ]),
].join("\n");

const parts = [
  read("intro.md"),
  demote(read("loop.md")),
  demote(read("hdtoml.md")).replace(/^### hd\.toml reference/m, "## hd.toml reference"),
  cli,
  demote(read("store.md")),
  demote(read("images.md")),
  demote(read("mount.md")),
  demote(read("sandbox.md")),
  demote(read("bench.md")),
].filter((p) => p.trim() !== "");
const body = parts.join("\n\n").replace(/\n{3,}/g, "\n\n");
Deno.writeTextFileSync(`${repo}README.md.tmp`, body.trimEnd() + "\n");
Deno.renameSync(`${repo}README.md.tmp`, `${repo}README.md`);
console.log(`wrote README.md (${body.split("\n").length} lines)`);
