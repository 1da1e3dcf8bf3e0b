/**
 * `hd status` through the CLI with its saved proof: the first status makes .hd/ in the project
 * (which changes the project directory: no proof yet); one a racy window later saves a proof, the
 * next answers from it (the same JSON, the proof file untouched), and an in-place edit is seen
 * from the proof and the edited file (the same JSON as a status made to scan).
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
  // worked out from the proof and the edited file: the proof stays as it was
  assertEquals(Deno.statSync(proof).mtime!.getTime(), saved, "the proof is kept");
  assertEquals(await status(), edited, "the same again");
  // a scan (no proof) says the same; the edit is within the racy window of that scan: its proof
  // is dropped, not saved
  Deno.removeSync(proof);
  assertEquals(await status(), edited, "the same as a scan");
  let gone = false;
  try {
    Deno.statSync(proof);
  } catch {
    gone = true;
  }
  assert(gone, "no proof while a file is younger than the racy window");
});

Deno.test("hd status: answers without parsing hd.toml until hd.toml or a variable it reads changes", async () => {
  using d = tempDir("hd-status-");
  using s = tempDir("hd-store-");
  Deno.mkdirSync(`${d.path}/src`);
  // hd.toml outside the tracked tree: only the proof's binding of hd.toml can see its edit
  const toml = (name: string) =>
    `[environment]\nname = "${name}"\nenv = { V = "\${HD_QS_CLI:-none}" }\n[files]\ninclude = ["src"]\n`;
  Deno.writeTextFileSync(`${d.path}/hd.toml`, toml("aa"));
  Deno.writeTextFileSync(`${d.path}/src/a.js`, "console.log(1);\n");
  const trace = `${s.path}/trace`;
  const status = async (env: Record<string, string> = {}) => {
    Deno.writeTextFileSync(trace, "");
    const r = await hd(["status", "--json"], {
      store: s.path,
      cwd: d.path,
      env: { HD_TRACE: trace, ...env },
    });
    assertEquals(r.code, 0, r.stderr);
    return { json: JSON.parse(r.stdout), parsed: Deno.readTextFileSync(trace).includes("parse") };
  };
  await status(); // makes .hd/
  await new Promise((r) => setTimeout(r, RACY_MS + 200));
  const first = await status(); // saves the proof
  const second = await status();
  assertEquals([second.json, second.parsed], [first.json, false], "from the proof, no parse");
  const other = await status({ HD_QS_CLI: "set" });
  assertEquals(other.parsed, true, "a variable hd.toml reads changed: parsed again");
  Deno.writeTextFileSync(`${d.path}/hd.toml`, toml("bb")); // same size, in place
  const renamed = await status();
  assertEquals([renamed.json.name, renamed.parsed], ["bb", true]);
});
