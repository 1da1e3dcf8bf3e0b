/**
 * The `hd` entry point: finds the command, parses its options, runs it, and turns errors into
 * one-line messages (`error: Cannot …` and a `hint:` line) with exit code 1 (user) or 2 (usage).
 *
 * @example
 * ```ts
 * import { main } from "./main.ts";
 * Deno.exit(await main(["cas", "stats", "--json"]));
 * ```
 * @module
 */
import { lazyImport } from "../sys/lazy.ts";
import { parseOptions } from "./args.ts";
import { HdError } from "../sys/errors.ts";
import type { Store } from "../cas/store.ts";
import type { Command, Context, OptionSpec } from "./command.ts";
import { type CommandEntry, COMMANDS } from "./commands.ts";
import { Output } from "./output.ts";
import { fsErrorToHdError } from "./fs_error.ts";
import { didYouMean } from "../config/suggest.ts";
import { defaultStoreRoot } from "../cas/root.ts";
import { trace } from "../sys/trace.ts";
import { VERSION } from "./help_text.ts";

/** Re-exported for callers that imported it from here; it lives in src/config/suggest.ts. */
export { didYouMean };

const GLOBAL: Record<string, OptionSpec> = {
  json: { type: "boolean", help: "print one JSON document on stdout" },
  store: { type: "string", help: "store directory (default $HD_HOME, else ~/.hd)" },
  debug: { type: "boolean", help: "show stack traces on errors" },
  help: { type: "boolean", short: "h", help: "show help" },
};

export { VERSION };

function findCommand(argv: string[]): { entry: CommandEntry; rest: string[] } | null {
  let best: { entry: CommandEntry; rest: string[] } | null = null;
  for (const entry of COMMANDS) {
    const words = entry.name.split(" ");
    if (words.every((w, i) => argv[i] === w)) {
      if (!best || words.length > best.entry.name.split(" ").length) {
        best = { entry, rest: argv.slice(words.length) };
      }
    }
  }
  return best;
}

/**
 * The text of `hd --help`, made from the command table. cli.ts prints the copy in help_text.ts
 * (written by scripts/cli_docs.ts, which `deno task check` keeps equal to this) without loading
 * this module.
 */
export function topHelp(): string {
  // the summaries are listed beside the loaders: no command module is loaded for this
  const cmds = COMMANDS;
  const w = Math.max(...cmds.map((c) => c.name.length));
  return [
    "hd — content-addressed development environments",
    "",
    "Usage: hd <command> [options]",
    "",
    "Commands:",
    ...cmds.map((c) => `  ${c.name.padEnd(w)}  ${c.summary}`),
    "",
    "Global options: --json, --store DIR, --debug, --help. `hd <command> --help` for more.",
  ].join("\n");
}

function commandHelp(cmd: Command): string {
  const opts = Object.fromEntries(
    Object.entries({ ...cmd.options, ...GLOBAL }).filter(([, o]) => !o.hidden),
  );
  const heads = Object.entries(opts).map(([k, o]) =>
    `  ${o.short ? `-${o.short}, ` : "    "}--${k}${o.type === "string" ? " VALUE" : ""}`
  );
  const w = Math.max(...heads.map((h) => h.length)) + 2;
  const lines = Object.values(opts).map((o, i) => heads[i].padEnd(w) + o.help);
  return [`${cmd.summary}`, "", `Usage: ${cmd.usage}`, "", "Options:", ...lines].join("\n");
}

/**
 * For a command that runs another command (`hd exec`): `rest` split into hd's own options (those
 * before the first positional, or before `--`) and the command with its arguments, untouched —
 * `hd exec db psql -h x --json` passes `-h x --json` to psql.
 */
export function splitPassThrough(
  rest: string[],
  options: Record<string, OptionSpec>,
): { own: string[]; tail: string[] } {
  const takesValue = new Set<string>();
  for (const [k, o] of Object.entries(options)) {
    if (o.type === "string") (takesValue.add(`--${k}`), o.short && takesValue.add(`-${o.short}`));
  }
  let i = 0;
  while (i < rest.length) {
    const a = rest[i];
    if (a === "--") return { own: rest.slice(0, i), tail: rest.slice(i + 1) };
    if (!a.startsWith("-") || a === "-") break;
    i += takesValue.has(a) ? 2 : 1;
  }
  return { own: rest.slice(0, i), tail: rest.slice(i) };
}

/** Runs the CLI with `argv` (without the program name); resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  trace("process start", 0);
  trace(`main ${argv.join(" ")}`);
  // hd's own flags: for `hd exec`, only those before the command it runs
  const early = findCommand(argv);
  const mine = early?.entry.passThrough
    ? argv.slice(0, argv.length - splitPassThrough(early.rest, GLOBAL).tail.length)
    : argv;
  const json = mine.includes("--json");
  const debug = mine.includes("--debug");
  const out = new Output({ json });
  try {
    if (argv.length === 0 || argv[0] === "--help" || argv[0] === "-h" || argv[0] === "help") {
      out.line(topHelp());
      return argv.length === 0 ? 2 : 0;
    }
    if (argv[0] === "--version" || argv[0] === "version") {
      out.result({ version: VERSION }, () => `hd ${VERSION}`);
      return 0;
    }
    const found = findCommand(argv);
    if (!found) {
      const words = argv.filter((a) => !a.startsWith("-")).slice(0, 2).join(" ");
      const guess = didYouMean(words, COMMANDS.map((c) => c.name)) ??
        didYouMean(argv[0], new Set(COMMANDS.map((c) => c.name.split(" ")[0])));
      throw new HdError(
        `Cannot run "hd ${words}": no such command`,
        guess
          ? `did you mean \`hd ${guess}\`? (\`hd --help\` lists commands)`
          : "`hd --help` lists the commands",
        2,
      );
    }
    found.entry.early?.(found.rest);
    // The store (BLAKE3's native module) loads only for a command that runs: `hd --version` and
    // `hd --help` start without it; a `lazyStore` command loads it only if it opens it.
    const cmd = await found.entry.load();
    let storeMod = cmd.lazyStore ? null : await lazyImport<typeof import("../cas/store.ts")>(
      new URL("../cas/store.ts", import.meta.url),
    );
    trace("command loaded");
    const options = { ...GLOBAL, ...cmd.options };
    const split = cmd.passThrough ? splitPassThrough(found.rest, options) : null;
    const rest = split ? split.own : found.rest;
    let parsed;
    try {
      parsed = parseOptions(rest, options); // node:util parseArgs' rules and messages (args.ts)
    } catch (e) {
      const msg = (e as Error).message.split("\n")[0];
      const unknown = /Unknown option '(-{1,2})([^']+)'/.exec(msg);
      const guess = unknown ? didYouMean(unknown[2], Object.keys(options)) : null;
      throw new HdError(
        `Cannot parse options of "hd ${cmd.name}": ${msg}`,
        guess
          ? `did you mean --${guess}? (usage: ${cmd.usage.split("\n")[0]})`
          : `usage: ${cmd.usage.split("\n")[0]}`,
        2,
      );
    }
    if (parsed.values.help) {
      out.line(commandHelp(cmd));
      return 0;
    }
    const storeRoot = (parsed.values.store as string | undefined) ?? defaultStoreRoot();
    let store: Store | null = null;
    const openSync = (create = true) => {
      if (!storeMod) throw new Error(`hd ${cmd.name} opened the store before loading it`);
      return (store ??= storeMod.Store.open(storeRoot, { create }));
    };
    const ctx: Context = {
      out,
      storeRoot,
      debug,
      store: openSync,
      openStore: async (create = true) => {
        storeMod ??= await lazyImport<typeof import("../cas/store.ts")>(
          new URL("../cas/store.ts", import.meta.url),
        );
        return openSync(create);
      },
      values: parsed.values as Context["values"],
      positionals: split ? [...parsed.positionals, ...split.tail] : parsed.positionals,
    };
    return await cmd.run(ctx);
  } catch (caught) {
    return reportError(caught, out, json, debug);
  }
}

/**
 * Says on stderr (and, with `json`, on stdout) what went wrong, the way every command reports a
 * failure: an HdError with its hint, a filesystem error as the user's to fix, anything else as a
 * bug. Returns the exit code.
 */
export function reportError(caught: unknown, out: Output, json: boolean, debug: boolean): number {
  out.clearProgress();
  // a foreseeable filesystem error (a directory where a file should be, a full disk …) is the
  // user's to fix, not a bug: say which path and what to do
  const fsErr = caught instanceof HdError ? null : fsErrorToHdError(caught);
  if (fsErr && debug) out.note((caught as Error).stack ?? "");
  const e = fsErr ?? caught;
  if (e instanceof HdError) {
    if (json) {
      Deno.stdout.writeSync(
        new TextEncoder().encode(
          JSON.stringify({ error: e.message, hint: e.hint || undefined }, null, 2) + "\n",
        ),
      );
    }
    out.note(`${out.paint("error:", "red")} ${e.message}`);
    if (e.hint) out.note(`${out.paint("hint:", "dim")} ${e.hint}`);
    if (debug) out.note(e.stack ?? "");
    return e.exitCode;
  }
  const err = e as Error;
  out.note(`${out.paint("error:", "red")} Cannot complete the command: ${err.message}`);
  out.note(
    debug
      ? err.stack ?? ""
      : "hint: this looks like a bug in hd; run again with --debug and report it",
  );
  return 1;
}
