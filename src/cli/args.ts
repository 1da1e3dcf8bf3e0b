/**
 * Option parsing for the CLI: the subset of node:util's `parseArgs` (strict, positionals allowed)
 * that hd uses, with the same results and the same error texts. Importing node:util cost ~6 ms of
 * CPU at the start of every command that runs (it initialises Node compatibility); this does not.
 * tests/cli/args_test.ts compares it with node:util's on a table of argument lists.
 *
 * Accepted: `--name`, `--name value`, `--name=value`, `-n`, `-n value`, `-nvalue` (a string short
 * option), `-abc` (boolean short options grouped), `--` (the rest are positionals), `-` (a
 * positional), options after positionals; `multiple` options collect an array.
 *
 * @example
 * ```ts
 * import { parseOptions } from "./args.ts";
 * const { values, positionals } = parseOptions(["-n", "5", "web"], {
 *   lines: { type: "string", short: "n" },
 * });
 * ```
 * @module
 */

/** How an option is declared (as node:util parseArgs takes it). */
export interface ArgSpec {
  type: "boolean" | "string";
  short?: string;
  multiple?: boolean;
}

/** Parsed values by option name, and the positionals in order. */
export interface ParsedArgs {
  values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  positionals: string[];
}

/** Parses `args` against `options`; throws an Error with node's text on a bad option. */
export function parseOptions(args: string[], options: Record<string, ArgSpec>): ParsedArgs {
  const values: ParsedArgs["values"] = Object.create(null);
  const positionals: string[] = [];
  const byShort = new Map<string, string>();
  for (const [name, o] of Object.entries(options)) if (o.short) byShort.set(o.short, name);
  const shown = (name: string) => {
    const o = options[name];
    return `${o.short ? `-${o.short}, ` : ""}--${name}${o.type === "string" ? " <value>" : ""}`;
  };
  const store = (name: string, v: string | boolean) => {
    if (options[name].multiple) {
      const prev = values[name];
      values[name] = Array.isArray(prev) ? [...prev, v] : [v];
    } else values[name] = v;
  };
  // the value of a string option given as the next argument (`token` as typed: --name or -x)
  const valueAfter = (i: number, name: string, token: string): string => {
    const v = args[i + 1];
    if (v === undefined || (v.length > 1 && v[0] === "-")) {
      throw new Error(
        v === undefined
          ? `Option '${shown(name)}' argument missing`
          : `Option '${shown(name)}' argument is ambiguous.\nDid you forget to specify the ` +
            `option argument for '${token}'?\nTo specify an option argument starting with a ` +
            `dash use '--${name}=-XYZ'.`,
      );
    }
    return v;
  };
  const unknown = (token: string) =>
    new Error(
      `Unknown option '${token}'. To specify a positional argument starting with a '-', place it ` +
        `at the end of the command after '--', as in '-- ${JSON.stringify(token)}`,
    );
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--") {
      positionals.push(...args.slice(i + 1));
      break;
    }
    if (!a.startsWith("-") || a === "-") {
      positionals.push(a);
      continue;
    }
    if (a.startsWith("--")) {
      const eq = a.indexOf("=");
      const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      const o = Object.hasOwn(options, name) ? options[name] : undefined;
      if (!o) throw unknown(eq < 0 ? a : a.slice(0, eq));
      if (o.type === "boolean") {
        if (eq >= 0) throw new Error(`Option '${shown(name)}' does not take an argument`);
        store(name, true);
        continue;
      }
      if (eq >= 0) {
        store(name, a.slice(eq + 1));
        continue;
      }
      store(name, valueAfter(i, name, `--${name}`));
      i++;
      continue;
    }
    // short options: one, or a group of booleans, or a string one with its value attached
    for (let k = 1; k < a.length; k++) {
      const ch = a[k];
      const name = byShort.get(ch);
      if (name === undefined) throw unknown(`-${ch}`);
      const o = options[name];
      if (o.type === "boolean") {
        store(name, true);
        continue;
      }
      if (k < a.length - 1) {
        store(name, a.slice(k + 1));
        break;
      }
      store(name, valueAfter(i, name, `-${ch}`));
      i++;
      break;
    }
  }
  return { values, positionals };
}
