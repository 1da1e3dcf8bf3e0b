/**
 * The shape of a CLI command and the context it runs in. Each command lives in its own file under
 * src/cli/ and is listed in commands.ts.
 *
 * @example
 * ```ts
 * import type { Command } from "./command.ts";
 * export const hello: Command = {
 *   name: "hello", summary: "say hello", usage: "hd hello",
 *   options: {}, run: (ctx) => { ctx.out.result({ ok: true }, () => "hello"); return 0; },
 * };
 * ```
 * @module
 */
import type { Output } from "./output.ts";
import type { Store } from "../cas/store.ts";

/** An option of a command, as node:util parseArgs takes it, plus help text. */
export interface OptionSpec {
  type: "boolean" | "string";
  short?: string;
  multiple?: boolean;
  help: string;
  /** Internal (e.g. `--supervise`): accepted, but not shown in help or docs/cli.md. */
  hidden?: boolean;
}

/** What every command receives. */
export interface Context {
  out: Output;
  /** Value of --store (or $HD_HOME, or ~/.hd). */
  storeRoot: string;
  /** True with --debug (stack traces on errors). */
  debug: boolean;
  /**
   * Opens the store (creating it unless `create` is false). For a command with `lazyStore`, only
   * after {@link Context.openStore} has resolved once.
   */
  store(create?: boolean): Store;
  /** Loads the store's modules if not yet loaded, then opens it as {@link Context.store} does. */
  openStore(create?: boolean): Promise<Store>;
  /** Parsed option values of this command. */
  values: Record<string, string | boolean | string[] | boolean[] | undefined>;
  /** Positional arguments after the command name. */
  positionals: string[];
}

/** A command of the `hd` CLI. */
export interface Command {
  /** Full name, words separated by spaces ("cas add"). */
  name: string;
  /** One line for `hd --help`. */
  summary: string;
  /** Usage line(s). */
  usage: string;
  /** Options beyond the global ones (--json, --store, --debug, --help). */
  options: Record<string, OptionSpec>;
  /**
   * hd's options end at the first positional (or `--`): that and everything after it are
   * positionals, flags included (hd exec).
   */
  passThrough?: boolean;
  /**
   * The command opens the store itself with `ctx.openStore()`, only when it needs it: the store's
   * modules (BLAKE3's native module among them) are not loaded before it runs (`hd status`).
   */
  lazyStore?: boolean;
  /** Runs the command; returns the exit code. */
  run(ctx: Context): Promise<number> | number;
}
