/** The command table: `hd --help` lists every command with its summary without loading them. */
import { assertEquals, assertIncludes } from "../_assert.ts";
import { hd } from "../_helpers.ts";
import { COMMANDS } from "../../src/cli/commands.ts";

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
