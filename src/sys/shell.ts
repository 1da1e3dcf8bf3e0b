/**
 * Quoting for `sh -c` command lines. Here in src/sys so that the modules which build such lines
 * (health checks, host steps) do not import the sandbox runtime for it.
 *
 * @example
 * ```ts
 * import { shQuote } from "./shell.ts";
 * console.log(shQuote("a.js"), shQuote("it's")); // a.js 'it'\''s'
 * ```
 * @module
 */

/** Quotes `s` for sh: as is when it holds only safe characters, else in single quotes. */
export function shQuote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
