/**
 * `hd status` through cli.ts's early path (src/cli/status_early.ts) against the full command
 * (src/cli/main.ts's `main`, which never takes the early path), on the same project and store:
 * the same bytes on stdout, text and --json, while the early path answers; and the early path
 * stands aside (the full command answers) for other options, an `.hd/up.json`, a mount entry, and
 * a proof that no longer holds.
 */
import { assert, assertEquals } from "../_assert.ts";
import { hd, REPO, tempDir } from "../_helpers.ts";
import { RACY_MS } from "../../src/env/quick_status.ts";
import { earlyStatusArgs } from "../../src/cli/status_early.ts";
import { upStatePath } from "../../src/services/control.ts";

Deno.test("earlyStatusArgs: status alone or with --json once, nothing else", () => {
  const cases: [string[], { json: boolean } | null][] = [
    [["status"], { json: false }],
    [["status", "--json"], { json: true }],
    [["status", "--json", "--json"], null],
    [["status", "--file", "x/hd.toml"], null],
    [["status", "--store", "/s"], null],
    [["status", "--help"], null],
    [["status", "-h"], null],
    [["status", "extra"], null],
    [["--json", "status"], null],
    [["up"], null],
    [[], null],
  ];
  for (const [args, want] of cases) assertEquals(earlyStatusArgs(args), want, args.join(" "));
});

/** `main(args)` of src/cli/main.ts in a child process: the full command, never the early path. */
async function full(args: string[], cwd: string, store: string) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      "--quiet",
      "--config",
      `${REPO}/deno.json`, // the import map, from the project's directory
      `import { main } from "${REPO}/src/cli/main.ts"; Deno.exit(await main(${
        JSON.stringify(args)
      }));`,
    ],
    cwd,
    env: { HD_HOME: store, NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("hd status: the early path prints exactly what the full command prints, or stands aside", async () => {
  using d = tempDir("hd-status-early-");
  using s = tempDir("hd-store-");
  Deno.mkdirSync(`${d.path}/src/sub`, { recursive: true });
  Deno.writeTextFileSync(
    `${d.path}/hd.toml`,
    `[environment]\nname = "early"\n[build]\nsteps = [{ run = "build", inputs = ["src"] }, "test"]\n`,
  );
  Deno.writeTextFileSync(`${d.path}/src/a.js`, "console.log(1);\n");
  Deno.writeTextFileSync(`${d.path}/src/sub/b.js`, "console.log(2);\n");
  const trace = `${s.path}/trace`;
  /** cli.ts's answer, and whether the early path gave it. */
  const viaCli = async (args: string[]) => {
    Deno.writeTextFileSync(trace, "");
    const r = await hd(args, { store: s.path, cwd: d.path, env: { HD_TRACE: trace } });
    assertEquals(r.code, 0, r.stderr);
    return { stdout: r.stdout, early: Deno.readTextFileSync(trace).includes("early answer") };
  };
  await viaCli(["status"]); // makes .hd/
  await new Promise((r) => setTimeout(r, RACY_MS + 200)); // every path older than the window
  await viaCli(["status"]); // saves the proof that binds hd.toml

  for (const args of [["status", "--json"], ["status"]]) {
    const e = await viaCli(args);
    assert(e.early, `${args.join(" ")}: the early path answered`);
    const f = await full(args, d.path, s.path);
    assertEquals(f.code, 0, f.stderr);
    assertEquals(e.stdout, f.stdout, `${args.join(" ")}: the same bytes`);
  }
  const json = JSON.parse((await viaCli(["status", "--json"])).stdout);
  assertEquals([json.name, json.steps.length, json.up, json.mounts], ["early", 2, {
    running: false,
  }, []]);

  // another option: the full command (the same answer)
  Deno.writeTextFileSync(trace, "");
  const withFile = await hd(["status", "--json", "--file", `${d.path}/hd.toml`], {
    store: s.path,
    cwd: d.path,
    env: { HD_TRACE: trace },
  });
  assertEquals(withFile.code, 0, withFile.stderr);
  assert(!Deno.readTextFileSync(trace).includes("early answer"), "--file: not the early path");
  assertEquals(JSON.parse(withFile.stdout), json);

  // an .hd/up.json hd did not write: the full command reports it (ignored), the early path stands aside
  const up = upStatePath(d.path);
  Deno.writeTextFileSync(up, "not json");
  const withUp = await viaCli(["status", "--json"]);
  assert(!withUp.early, "an up state: not the early path");
  assert(JSON.parse(withUp.stdout).up.invalid, "the full command saw the state");
  Deno.removeSync(up);
  assert((await viaCli(["status", "--json"])).early, "early again once it is gone");

  // an entry in the store's mount registry (one the full command ignores as malformed): the full
  // command reads the registry, the early path stands aside
  Deno.mkdirSync(`${s.path}/mounts`, { recursive: true });
  Deno.writeTextFileSync(`${s.path}/mounts/x.json`, "{}");
  const withMount = await viaCli(["status", "--json"]);
  assert(!withMount.early, "a mount entry: not the early path");
  assertEquals(JSON.parse(withMount.stdout), json);
  Deno.removeSync(`${s.path}/mounts`, { recursive: true });

  // a forged proof (the summary's tree root changed, the file otherwise well-formed): its MAC
  // fails, the early path stands aside and the real root is printed
  const proofPath = `${d.path}/.hd/status.bin`;
  const good = Deno.readFileSync(proofPath);
  const forged = new TextDecoder("latin1").decode(good).replace(json.tree.root, "f".repeat(64));
  Deno.writeFileSync(proofPath, Uint8Array.from(forged, (c) => c.charCodeAt(0)));
  const withForged = await viaCli(["status", "--json"]);
  assert(!withForged.early, "a forged proof: not the early path");
  assertEquals(JSON.parse(withForged.stdout).tree.root, json.tree.root);

  // an edit in place: the proof holds but for that file, which the early path rehashes
  // (src/env/proof_update.ts); what it prints is what the full command prints after a scan
  Deno.writeFileSync(proofPath, good);
  Deno.writeTextFileSync(`${d.path}/src/sub/b.js`, "console.log(3);\n"); // same size
  const edited = await viaCli(["status", "--json"]);
  assert(edited.early, "an edit in place: still the early path");
  const after = JSON.parse(edited.stdout);
  assert(after.tree.root !== json.tree.root, "the edit is seen");
  Deno.removeSync(proofPath); // the full command scans
  const f = await full(["status", "--json"], d.path, s.path);
  assertEquals(f.code, 0, f.stderr);
  assertEquals(JSON.parse(f.stdout), after, "the same as the full command");
});
