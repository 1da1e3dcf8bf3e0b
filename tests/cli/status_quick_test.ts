/**
 * `hd status` through the CLI with its saved proof: the first status makes .hd/ in the project
 * (which changes the project directory: no proof yet); one a racy window later saves a proof, the
 * next answers from it (the same JSON, the proof file untouched), and an in-place edit is seen
 * (the same JSON as a status made to scan).
 */
import { assert, assertEquals } from "../_assert.ts";
import { hd, tempDir } from "../_helpers.ts";
import { RACY_MS } from "../../src/env/quick_status.ts";

Deno.test("hd status: answers from its proof until a file is edited in place", async () => {
  using d = tempDir("hd-status-");
  using s = tempDir("hd-store-");
  Deno.mkdirSync(`${d.path}/src`);
  Deno.writeTextFileSync(
    `${d.path}/hd.toml`,
    `[environment]\nname = "q"\n[build]\nsteps = [{ run = "build", inputs = ["src"] }]\n`,
  );
  Deno.writeTextFileSync(`${d.path}/src/a.js`, "console.log(1);\n");
  const status = async () => {
    const r = await hd(["status", "--json"], { store: s.path, cwd: d.path });
    assertEquals(r.code, 0, r.stderr);
    return JSON.parse(r.stdout);
  };
  const zero = await status(); // makes .hd/
  await new Promise((r) => setTimeout(r, RACY_MS + 200)); // every path is older than the window
  const first = await status();
  assertEquals(first, zero);
  const proof = `${d.path}/.hd/status.bin`;
  const saved = Deno.statSync(proof).mtime!.getTime();
  const second = await status();
  assertEquals(second, first);
  assertEquals(Deno.statSync(proof).mtime!.getTime(), saved, "answered from the proof");
  Deno.writeTextFileSync(`${d.path}/src/a.js`, "console.log(2);\n"); // same size, same directory
  const edited = await status();
  assert(edited.tree.root !== first.tree.root, "the edit is seen");
  assert(edited.steps[0].hash !== first.steps[0].hash, "and changes the step with src as input");
  // the edit is within the racy window of that scan: its proof was dropped, not saved
  let gone = false;
  try {
    Deno.statSync(proof);
  } catch {
    gone = true;
  }
  assert(gone, "no proof while a file is younger than the racy window");
  assertEquals(await status(), edited, "the same again (a scan)");
});
