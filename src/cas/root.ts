/**
 * Where the store is by default, in a module of its own so that finding it loads nothing else
 * (the CLI reads it before it knows whether the command needs the store at all).
 * @module
 */

/** Default store root: `$HD_HOME`, else `~/.hd`. */
export function defaultStoreRoot(): string {
  const env = Deno.env.get("HD_HOME");
  if (env) return env;
  const home = Deno.env.get("HOME") ?? "/root";
  return `${home}/.hd`;
}
