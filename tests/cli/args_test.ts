/**
 * parseOptions (src/cli/args.ts) gives what node:util's parseArgs (strict, positionals allowed)
 * gives, on a table of argument lists: values, positionals, and for bad lists an error (the same
 * text for unknown options, which main.ts reads for its "did you mean").
 */
import { assert, assertEquals } from "../_assert.ts";
import { parseArgs } from "node:util";
import { type ArgSpec, parseOptions } from "../../src/cli/args.ts";

const OPTIONS: Record<string, ArgSpec> = {
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
  detach: { type: "boolean", short: "d" },
  store: { type: "string" },
  lines: { type: "string", short: "n" },
  follow: { type: "boolean", short: "f" },
  exclude: { type: "string", multiple: true },
  all: { type: "boolean", multiple: true, short: "a" },
};

const node = (args: string[]) =>
  parseArgs({
    args,
    options: Object.fromEntries(
      Object.entries(OPTIONS).map(([k, o]) => [
        k,
        { type: o.type, multiple: o.multiple ?? false, ...(o.short ? { short: o.short } : {}) },
      ]),
    ),
    allowPositionals: true,
    strict: true,
  });

const outcome = (f: () => { values: unknown; positionals: string[] }) => {
  try {
    const r = f();
    return { ok: true, values: { ...r.values as object }, positionals: r.positionals };
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  }
};

Deno.test("parseOptions agrees with node:util parseArgs (table)", () => {
  const cases: string[][] = [
    [],
    ["--json"],
    ["web", "--json", "api"],
    ["--store", "/s", "x"],
    ["--store=/s=t"],
    ["--store="],
    ["-n", "5", "web"],
    ["-n5"],
    ["-fd"],
    ["-df", "x"],
    ["-h"],
    ["--exclude", "a", "--exclude=b"],
    ["-a", "-a"],
    ["--", "--json", "-x"],
    ["-", "--json"],
    ["x", "--", "y"],
    ["--store", "-"],
    ["-n", "-"],
    ["--lines", "--", "x"],
    // errors
    ["--nope"],
    ["--nope=1"],
    ["-x"],
    ["-fx"],
    ["--store"],
    ["-n"],
    ["--json=1"],
    ["--store", "--json"],
    ["-n", "-f"],
    ["-fn5"],
    ["--__proto__"],
    ["--toString"],
  ];
  for (const args of cases) {
    const want = outcome(() => node(args));
    const got = outcome(() => parseOptions(args, OPTIONS));
    assertEquals(got.ok, want.ok, `ok for ${JSON.stringify(args)}: node said ${want.error}`);
    if (want.ok) {
      assertEquals(got.values, want.values, JSON.stringify(args));
      assertEquals(got.positionals, want.positionals, JSON.stringify(args));
    } else if (/Unknown option/.test(want.error!)) {
      assertEquals(got.error, want.error, JSON.stringify(args));
    } else assert(got.error!.length > 0);
  }
});
