/**
 * A session's compile from the project's proof (src/env/compile.ts's treeFromProof), end to end on
 * the host: once a session has saved its proof and recorded its tree, the next `hd up -d` takes
 * the tree from the proof instead of a scan (its trace says so), also after a file was edited in
 * place while it was down (the edit is ingested, the step that reads it runs again and nothing
 * starts early, and the session saves a new proof, which the next start takes); what it records
 * is what a scan gives (`hd status` after the proof is removed); an edit beside a new file is
 * taken from the proof too, its directory listed again, and gives what a scan gives.
 */
import { assert, assertEquals } from "../_assert.ts";
import { downAtEnd, hd, skipUnless, tempDir, testIf } from "../_helpers.ts";
import { waitFor } from "./_util.ts";

const NEEDS = skipUnless({ commands: ["sh"] });

testIf(
  NEEDS,
  "hd up -d takes its tree from the proof when nothing changed, files were edited in place or created",
  async () => {
    using tmp = tempDir();
    using store = tempDir();
    const dir = tmp.path;
    const trace = `${store.path}/trace`;
    const opts = { cwd: dir, store: store.path, env: { HD_TRACE: trace } };
    Deno.mkdirSync(`${dir}/src/lib`, { recursive: true });
    Deno.writeTextFileSync(
      `${dir}/hd.toml`,
      `[environment]
name = "sp"

[build]
steps = [{ run = "cat src/lib/b.txt > built.txt", inputs = ["src/lib"], outputs = ["built.txt"] }]

[services.a]
command = "sleep 600"
`,
    );
    Deno.writeTextFileSync(`${dir}/src/a.txt`, "a\n");
    Deno.writeTextFileSync(`${dir}/src/lib/b.txt`, "b1\n");
    await using _down = downAtEnd(opts);
    /** `hd up -d` and what its compile did: "proof: N" (files edited since) or "scan". */
    const up = async (): Promise<string> => {
      Deno.writeTextFileSync(trace, "");
      const r = await hd(["up", "-d"], opts);
      assertEquals(r.code, 0, r.stderr);
      const line = Deno.readTextFileSync(trace).split("\n")
        .find((l) => l.includes("compile: the tree from the proof"));
      if (!line) return "scan";
      const [, files, dirs] = line.match(/proof, (\d+) file\(s\) and (\d+) directories/)!;
      return `proof: ${files}` + (dirs === "0" ? "" : ` +${dirs} dirs`);
    };
    const down = async () => assertEquals((await hd(["down"], opts)).code, 0);
    /** Waits for the proof a session saves a second after its start. */
    const proofSaved = (since: number) =>
      waitFor(() => {
        try {
          return Deno.statSync(`${dir}/.hd/status.bin`).mtime!.getTime() >= since;
        } catch {
          return false;
        }
      }, "the session's proof");
    const status = async () => {
      const r = await hd(["status", "--json"], opts);
      assertEquals(r.code, 0, r.stderr);
      return JSON.parse(r.stdout);
    };

    assertEquals(await up(), "scan"); // no proof yet (and it makes .hd/)
    await down();
    await new Promise((r) => setTimeout(r, 1200)); // past the racy window
    const t1 = Date.now() - 5;
    assertEquals(await up(), "scan", "the proof of a status stores no tree"); // saves the proof
    await proofSaved(t1);
    await down();

    // nothing changed: the recorded tree is the proof's
    assertEquals(await up(), "proof: 0");
    const same = await status();
    assert(same.env.upToDate, JSON.stringify(same.env));
    await down();

    // edited in place while down: the edit is ingested, the step that reads it runs again (so
    // no service started before the session: the step was not cached)
    Deno.writeTextFileSync(`${dir}/src/lib/b.txt`, "b2\n");
    await new Promise((r) => setTimeout(r, 1200)); // past the racy window: a proof is saved again
    const t3 = Date.now() - 5;
    assertEquals(await up(), "proof: 1");
    assert(
      Deno.readTextFileSync(trace).includes("early services: none (a step is not cached)"),
      "not early: the edited file is the step's input",
    );
    await waitFor(() => Deno.readTextFileSync(`${dir}/built.txt`) === "b2\n", "the step ran");
    const edited = await status();
    assert(edited.tree.root !== same.tree.root, "a new tree");
    assertEquals(edited.tree.recorded, edited.tree.root);
    await proofSaved(t3); // the session's tree moved on from the proof's: it saves a new one
    await down();
    assertEquals(await up(), "proof: 0", "the next start takes the new proof's tree");
    await down();
    try {
      Deno.removeSync(`${dir}/.hd/status.bin`);
    } catch { /* none saved */ }
    const scanned = await status();
    assertEquals(scanned.tree.root, edited.tree.root, "what a scan gives");
    assertEquals(scanned.env.id, edited.env.id);

    // the status's scan above saved a proof of the recorded tree (its edit is past the window)
    assertEquals(await up(), "proof: 0");
    await down();
    // an edit beside a new file: the directory changed too, and is listed again
    Deno.writeTextFileSync(`${dir}/src/a.txt`, "a2\n");
    Deno.writeTextFileSync(`${dir}/src/new.txt`, "new\n");
    assertEquals(await up(), "proof: 1 +1 dirs");
    const after = await status();
    assertEquals(after.tree.recorded, after.tree.root);
    await down();
    try {
      Deno.removeSync(`${dir}/.hd/status.bin`);
    } catch { /* none saved (the edits are within the racy window) */ }
    assertEquals((await status()).tree.root, after.tree.root, "what a scan gives");
  },
);
