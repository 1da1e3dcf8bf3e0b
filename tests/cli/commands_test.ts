/** The command table: `hd --help` lists every command with its summary without loading them. */
import { assertEquals, assertIncludes } from "../_assert.ts";
import { hd } from "../_helpers.ts";
import { COMMANDS } from "../../src/cli/commands.ts";
import { topHelp, VERSION } from "../../src/cli/main.ts";
import { TOP_HELP } from "../../src/cli/help_text.ts";

Deno.test("commands: each entry's summary is its command's own (name and summary agree)", async () => {
  for (const e of COMMANDS) {
    const c = await e.load();
    assertEquals(c.name, e.name);
    assertEquals(e.summary, c.summary, `summary of "${e.name}" in commands.ts`);
  }
});

Deno.test("commands: hd --help lists every command with its summary", async () => {
  const r = await hd(["--help"]);
  assertEquals(r.code, 0);
  for (const e of COMMANDS) assertIncludes(r.stdout, `  ${e.name} `);
  for (const e of COMMANDS) assertIncludes(r.stdout, e.summary);
});

Deno.test("commands: hd --help, -h and no command print main.ts's topHelp() (help_text.ts in sync); --version its VERSION", async () => {
  assertEquals(TOP_HELP, topHelp(), "run `deno run -A scripts/cli_docs.ts`");
  for (const [args, code] of [[["--help"], 0], [["-h"], 0], [["help"], 0], [[], 2]] as const) {
    const r = await hd([...args]);
    assertEquals([r.code, r.stdout], [code, topHelp() + "\n"], args.join(" "));
  }
  const v = await hd(["--version"]);
  assertEquals([v.code, v.stdout], [0, `hd ${VERSION}\n`]);
  // with other arguments the CLI itself answers: --json makes --version a JSON document
  const j = await hd(["--version", "--json"]);
  assertEquals(JSON.parse(j.stdout), { version: VERSION });
});
