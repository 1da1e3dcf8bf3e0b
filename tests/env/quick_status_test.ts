/**
 * The saved proof of `hd status` (src/env/quick_status.ts): the rules (table), and on real files
 * that every change a scan would see breaks it — an in-place edit that leaves the directory alone,
 * a file created in an empty directory, a chmod, an mtime set back, hd.lock appearing, another
 * hd.toml — that a write during the scan keeps it from being saved, and that a damaged or foreign
 * proof is ignored. A proof that binds hd.toml as well (answered without parsing it) breaks when
 * hd.toml, .env or a variable it reads changes, and is not made when it could not see those.
 */
import { assert, assertEquals } from "../_assert.ts";
import { tempDir } from "../_helpers.ts";
import { Store } from "../../src/cas/store.ts";
import { compileEnv } from "../../src/env/compile.ts";
import { gatherStatus } from "../../src/env/report.ts";
import {
  bindable,
  loadBoundStatus,
  loadQuickStatus,
  proofSubject,
  quickStatusPath,
  RACY_MS,
  recordable,
  recordingEnv,
  saveQuickStatus,
  summaryOf,
} from "../../src/env/quick_status.ts";
import { loadSpec } from "../../src/config/parse.ts";

Deno.test("quick status rule: recordable only when every path is present and its ctime older than the scan by the racy window (table)", () => {
  const start = 1_700_000_000_000;
  const cases: [string, (number | null)[], boolean][] = [
    ["all old", [start - 5000, start - RACY_MS - 1], true],
    ["one inside the racy window", [start - 5000, start - RACY_MS + 1], false],
    ["one exactly at the window's edge", [start - RACY_MS], false],
    ["one written during the scan", [start + 10], false],
    ["one absent", [start - 5000, null], false],
    ["none", [], true],
  ];
  for (const [what, ctimes, want] of cases) assertEquals(recordable(ctimes, start), want, what);
});

function writeProject(dir: string): void {
  Deno.mkdirSync(`${dir}/src/lib`, { recursive: true });
  Deno.mkdirSync(`${dir}/empty`, { recursive: true });
  Deno.writeTextFileSync(
    `${dir}/hd.toml`,
    `[environment]\nname = "q"\n[build]\nsteps = [{ run = "build", inputs = ["src"] }, "test"]\n`,
  );
  Deno.writeTextFileSync(`${dir}/src/a.js`, "console.log(1);\n");
  Deno.writeTextFileSync(`${dir}/src/lib/b.js`, "module.exports = 2;\n");
}

/** A written project ({@link writeProject}) and a new store, both removed at the scope's end. */
function project(): { path: string; store: Store; [Symbol.dispose](): void } {
  const d = tempDir("hd-quick-");
  const s = tempDir("hd-store-");
  writeProject(d.path);
  return {
    path: d.path,
    store: Store.open(s.path, { create: true }),
    [Symbol.dispose]() {
      s[Symbol.dispose]();
      d[Symbol.dispose]();
    },
  };
}

/** A project scanned and its proof saved as if the scan had started 2 s after the last write. */
async function saved(dir: string, store: Store) {
  const spec = loadSpec(`${dir}/hd.toml`);
  const subject = proofSubject(spec, {});
  const c = await compileEnv(store, spec, { write: false, record: false });
  // the files are unchanged since they were written: a scan started RACY_MS + 1 s later would
  // have read the same, so the proof may be saved as of then
  const ok = await saveQuickStatus(
    store.identity().key,
    spec,
    subject,
    c,
    Date.now() + RACY_MS + 1000,
  );
  return { spec, subject, c, ok };
}

Deno.test("quick status: a saved proof gives the scan's summary back until something changes", async () => {
  using d = project();
  const store = d.store;
  const { spec, subject, c, ok } = await saved(d.path, store);
  assert(ok, "the proof is saved");
  assertEquals(await loadQuickStatus(store.identity().key, spec, subject), {
    summary: summaryOf(c),
    changed: [],
    dirs: [],
    walked: c.walked,
  });
  // another subject (hd.toml parsed differently, another pulled image) does not take it
  assertEquals(await loadQuickStatus(store.identity().key, spec, subject + " "), null);
  // another store's key does not verify it
  using s2 = tempDir("hd-store-");
  assertEquals(
    await loadQuickStatus(Store.open(s2.path, { create: true }).identity().key, spec, subject),
    null,
  );
  // a changed digit in the summary fails the MAC (the file is otherwise well-formed)
  const p = quickStatusPath(spec);
  const bytes = Deno.readFileSync(p);
  const text = new TextDecoder("latin1").decode(bytes);
  const at = text.indexOf(c.filesRoot);
  assert(at > 64, "the summary holds the root");
  const flipped = bytes.slice();
  flipped[at] = flipped[at] === 0x30 ? 0x31 : 0x30;
  Deno.writeFileSync(p, flipped);
  assertEquals(await loadQuickStatus(store.identity().key, spec, subject), null);
  // so does a changed stat word (as if the proof were edited to match a changed file)
  const word = bytes.slice();
  word[bytes.length - 1] ^= 1;
  Deno.writeFileSync(p, word);
  assertEquals(await loadQuickStatus(store.identity().key, spec, subject), null);
  Deno.writeFileSync(p, bytes);
  assert((await loadQuickStatus(store.identity().key, spec, subject)) !== null, "restored");
  Deno.writeFileSync(p, bytes.subarray(0, 100)); // truncated
  assertEquals(await loadQuickStatus(store.identity().key, spec, subject), null);
});

Deno.test("quick status: every change a scan sees breaks the proof, or names the files and directories changed", async () => {
  // [what, change, the files and the directories the proof names as changed (none: it no longer
  // holds at all)]
  const changes: [string, (dir: string) => void, [string[], string[]]?][] = [
    ["an in-place edit of the same size (the directory is untouched)", (dir) => {
      const before = Deno.statSync(`${dir}/src`);
      Deno.writeTextFileSync(`${dir}/src/a.js`, "console.log(2);\n");
      const after = Deno.statSync(`${dir}/src`);
      assertEquals([after.mtime, after.ctime, after.size], [
        before.mtime,
        before.ctime,
        before.size,
      ]);
    }, [["src/a.js"], []]],
    ["a file created in an empty (untracked) directory", (dir) => {
      Deno.writeTextFileSync(`${dir}/empty/new.js`, "x");
    }, [[], ["empty"]]],
    ["a file removed", (dir) => Deno.removeSync(`${dir}/src/lib/b.js`), [["src/lib/b.js"], [
      "src/lib",
    ]]],
    ["a file renamed", (dir) => Deno.renameSync(`${dir}/src/a.js`, `${dir}/src/c.js`), [[
      "src/a.js",
    ], ["src"]]],
    ["a chmod", (dir) => Deno.chmodSync(`${dir}/src/a.js`, 0o755), [["src/a.js"], []]],
    ["an edit with the mtime set back", (dir) => {
      const st = Deno.statSync(`${dir}/src/a.js`);
      Deno.writeTextFileSync(`${dir}/src/a.js`, "console.log(3);\n");
      Deno.utimeSync(`${dir}/src/a.js`, st.atime!, st.mtime!);
    }, [["src/a.js"], []]],
    ["two files edited, one a directory below the other", (dir) => {
      Deno.writeTextFileSync(`${dir}/src/lib/b.js`, "module.exports = 7;\n");
      Deno.writeTextFileSync(`${dir}/src/a.js`, "console.log(4);\n");
    }, [["src/a.js", "src/lib/b.js"], []]],
    ["an edit and a file created", (dir) => {
      Deno.writeTextFileSync(`${dir}/src/a.js`, "console.log(5);\n");
      Deno.writeTextFileSync(`${dir}/src/new.js`, "x");
    }, [["src/a.js"], ["src"]]],
    ["hd.lock appearing", (dir) => Deno.writeTextFileSync(`${dir}/hd.lock`, "{}")],
  ];
  for (const [what, change, edited] of changes) {
    using d = project();
    const store = d.store;
    const { spec, subject, ok } = await saved(d.path, store);
    assert(ok, what);
    assert(
      (await loadQuickStatus(store.identity().key, spec, subject)) !== null,
      `holds before: ${what}`,
    );
    change(d.path);
    const q = await loadQuickStatus(store.identity().key, spec, subject);
    assertEquals(q && [q.changed.toSorted(), q.dirs.toSorted()], edited ?? null, what);
  }
});

Deno.test("quick status: a file written during the scan keeps the proof from being saved", async () => {
  using d = project();
  const store = d.store;
  const spec = loadSpec(`${d.path}/hd.toml`);
  const subject = proofSubject(spec, {});
  // the project's files are older than the racy window when the scans below start
  await new Promise((r) => setTimeout(r, RACY_MS + 200));
  const start = Date.now();
  const c = await compileEnv(store, spec, { write: false, record: false });
  Deno.writeTextFileSync(`${d.path}/src/a.js`, "console.log(9);\n"); // during the scan
  assertEquals(await saveQuickStatus(store.identity().key, spec, subject, c, start), false);
  let absent = false;
  try {
    Deno.statSync(quickStatusPath(spec));
  } catch {
    absent = true;
  }
  assert(absent, "no proof on disk");
  // the control: a scan of files older than the window saves one (src/a.js is new: leave it)
  Deno.removeSync(`${d.path}/src/a.js`);
  Deno.removeSync(`${d.path}/src`, { recursive: true });
  const start2 = Date.now() + RACY_MS + 1000; // as if started after the window had passed
  const c2 = await compileEnv(store, spec, { write: false, record: false });
  assertEquals(await saveQuickStatus(store.identity().key, spec, subject, c2, start2), true);
});

Deno.test("quick status: gatherStatus answers from the proof, and after an edit from a scan (the same as without proofs)", async () => {
  using d = project();
  const store = d.store;
  const { spec } = await saved(d.path, store);
  const quick = await gatherStatus(store, spec);
  const full = await gatherStatus(store, spec, undefined, { quick: false });
  assertEquals({ ...quick, tree: { ...quick.tree, cacheHits: 0 } }, {
    ...full,
    tree: { ...full.tree, cacheHits: 0 },
  });
  Deno.writeTextFileSync(`${d.path}/src/lib/b.js`, "module.exports = 3;\n");
  const after = await gatherStatus(store, spec);
  assert(after.tree.root !== quick.tree.root, "the edit is seen");
  assertEquals(
    after.tree.root,
    (await gatherStatus(store, spec, undefined, { quick: false })).tree.root,
  );
  assert(after.steps[0].hash !== quick.steps[0].hash, "the step with src as input changes");
});

Deno.test("quick status rule: a proof binds hd.toml only without images, variables read by name, and no symlinked spec file (table)", () => {
  const cases: [
    string,
    boolean,
    string[] | null,
    ("file" | "symlink" | "absent" | "other")[],
    boolean,
  ][] = [
    ["plain, no variables, hd.toml and no .env", true, [], ["file", "absent"], true],
    ["plain, named variables, .env present", true, ["HOME", "X"], ["file", "file"], true],
    ["with images (pulled ids in the subject)", false, [], ["file", "absent"], false],
    ["the parse listed the whole environment", true, null, ["file", "absent"], false],
    [
      "hd.toml is a symlink (its target's edit is not seen)",
      true,
      [],
      ["symlink", "absent"],
      false,
    ],
    [".env is a symlink", true, [], ["file", "symlink"], false],
    ["an env_file is a directory or unreadable", true, [], ["file", "other"], false],
  ];
  for (const [what, plain, names, kinds, want] of cases) {
    assertEquals(bindable(plain, names, kinds), want, what);
  }
});

Deno.test("quick status: recordingEnv lists the variables a parse reads, or null once it lists them all", () => {
  const r = recordingEnv({ A: "1", B: "2" });
  assertEquals([r.env.A, Object.hasOwn(r.env, "C"), "B" in r.env], ["1", false, true]);
  assertEquals(r.names(), ["A", "B", "C"]);
  assertEquals(Object.keys(r.env), ["A", "B"]);
  assertEquals(r.names(), null);
  // a real parse of a project that reads one variable
  using d = tempDir("hd-quick-");
  Deno.writeTextFileSync(
    `${d.path}/hd.toml`,
    `[environment]\nname = "q"\nenv = { A = "\${HD_QS_ONE:-x}" }\n`,
  );
  const e = recordingEnv({ HD_QS_ONE: "y", OTHER: "z" });
  assertEquals(loadSpec(`${d.path}/hd.toml`, { env: e.env }).environment.env, { A: "y" });
  assertEquals(e.names(), ["HD_QS_ONE"]);
});

/**
 * A project whose hd.toml reads HD_QS_VAR and tracks src/ only, scanned and its proof saved
 * binding hd.toml.
 */
async function savedBound(dir: string, store: Store, env: Record<string, string>) {
  Deno.writeTextFileSync(
    `${dir}/hd.toml`,
    // hd.toml and .env are outside the tracked tree: only the binding can see their edits
    `[environment]\nname = "q"\nenv = { V = "\${HD_QS_VAR:-none}" }\n[files]\ninclude = ["src"]\n[build]\nsteps = [{ run = "build", inputs = ["src"] }]\n`,
  );
  const rec = recordingEnv(env);
  const spec = loadSpec(`${dir}/hd.toml`, { env: rec.env });
  const c = await compileEnv(store, spec, { write: false, record: false });
  const ok = await saveQuickStatus(
    store.identity().key,
    spec,
    proofSubject(spec, {}),
    c,
    Date.now() + RACY_MS + 1000,
    { plain: true, envNames: rec.names(), readAtMs: Date.now() + RACY_MS + 1000 },
  );
  return { spec, c, ok };
}

Deno.test("quick status: a proof that binds hd.toml answers without a parse until hd.toml, .env or a variable it reads changes", async () => {
  // [what, change, whether the proof holds (or the tracked files it names as edited)]
  const changes: [string, (dir: string) => void, boolean | string[]][] = [
    ["nothing", () => {}, true],
    ["an unread variable set", () => Deno.env.set("HD_QS_UNREAD", "1"), true],
    ["hd.toml edited in place, same size", (dir) => {
      const t = Deno.readTextFileSync(`${dir}/hd.toml`);
      Deno.writeTextFileSync(`${dir}/hd.toml`, t.replace('name = "q"', 'name = "r"'));
    }, false],
    [".env created", (dir) => Deno.writeTextFileSync(`${dir}/.env`, "HD_QS_VAR=1\n"), false],
    ["the variable hd.toml reads set", () => Deno.env.set("HD_QS_VAR", "2"), false],
    ["a tracked file edited", (dir) => Deno.writeTextFileSync(`${dir}/src/a.js`, "x"), [
      "src/a.js",
    ]],
  ];
  for (const [what, change, holds] of changes) {
    Deno.env.delete("HD_QS_VAR");
    Deno.env.delete("HD_QS_UNREAD");
    using d = project();
    const store = d.store;
    const { spec, c, ok } = await savedBound(d.path, store, Deno.env.toObject());
    assert(ok, what);
    const key = store.identity().key;
    const before = await loadBoundStatus(key, `${d.path}/hd.toml`);
    assertEquals(before?.summary, summaryOf(c), `holds before: ${what}`);
    assertEquals(before?.facts, {
      file: `${d.path}/hd.toml`,
      dir: d.path,
      name: "q",
      base: null,
      dependencies: 0,
    });
    // the proof of another hd.toml path (--file elsewhere) is not this one's
    assertEquals(await loadBoundStatus(key, `${d.path}/other.toml`), null);
    change(d.path);
    assertEquals(
      (await loadBoundStatus(key, `${d.path}/hd.toml`))?.changed ?? null,
      holds === true ? [] : holds === false ? null : holds,
      what,
    );
    // the parsed path agrees: the same proof answers (or not) for the spec parsed now
    const now = loadSpec(`${d.path}/hd.toml`);
    if (holds === true) {
      assertEquals(
        await loadQuickStatus(key, now, proofSubject(now, {})),
        { summary: summaryOf(c), changed: [], dirs: [], walked: c.walked },
        what,
      );
    }
    assertEquals(spec.file, `${d.path}/hd.toml`);
  }
  Deno.env.delete("HD_QS_VAR");
  Deno.env.delete("HD_QS_UNREAD");
});

Deno.test("quick status: no proof binds a symlinked hd.toml or a parse that listed the environment (the plain proof still holds)", async () => {
  using d = project();
  const store = d.store;
  const key = store.identity().key;
  // listed: the names are unknown
  const spec = loadSpec(`${d.path}/hd.toml`);
  const c = await compileEnv(store, spec, { write: false, record: false });
  const later = Date.now() + RACY_MS + 1000;
  const subject = proofSubject(spec, {});
  assert(
    await saveQuickStatus(key, spec, subject, c, later, {
      plain: true,
      envNames: null,
      readAtMs: later,
    }),
  );
  assertEquals(await loadBoundStatus(key, `${d.path}/hd.toml`), null);
  assertEquals(await loadQuickStatus(key, spec, subject), {
    summary: summaryOf(c),
    changed: [],
    dirs: [],
    walked: c.walked,
  });
  // hd.toml a symlink to a file elsewhere
  using o = tempDir("hd-quick-");
  Deno.renameSync(`${d.path}/hd.toml`, `${o.path}/real.toml`);
  Deno.symlinkSync(`${o.path}/real.toml`, `${d.path}/hd.toml`);
  const linked = loadSpec(`${d.path}/hd.toml`);
  const c2 = await compileEnv(store, linked, { write: false, record: false });
  assert(
    await saveQuickStatus(key, linked, subject, c2, later, {
      plain: true,
      envNames: [],
      readAtMs: later,
    }),
  );
  assertEquals(await loadBoundStatus(key, `${d.path}/hd.toml`), null);
});

Deno.test("quick status: hd.toml read before the scan started counts for the racy rule of a proof that binds it", async () => {
  using d = project();
  const store = d.store;
  const key = store.identity().key;
  const spec = loadSpec(`${d.path}/hd.toml`);
  const c = await compileEnv(store, spec, { write: false, record: false });
  const later = Date.now() + RACY_MS + 1000; // the scan as if started after the window
  const subject = proofSubject(spec, {});
  // hd.toml was read just now (within the window of its last write): no proof, bound or not
  const now = { plain: true, envNames: [], readAtMs: Date.now() };
  assertEquals(await saveQuickStatus(key, spec, subject, c, later, now), false);
  assertEquals(await loadQuickStatus(key, spec, subject), null);
  // read after the window: saved and bound
  assert(await saveQuickStatus(key, spec, subject, c, later, { ...now, readAtMs: later }));
  assert((await loadBoundStatus(key, `${d.path}/hd.toml`)) !== null);
});

Deno.test("quick status: a file written after hd.toml was read but before the scan's window still lets a bound proof be saved", async () => {
  using d = project();
  const store = d.store;
  const key = store.identity().key;
  const spec = loadSpec(`${d.path}/hd.toml`);
  // a session parsed hd.toml (its start, readAtMs) well after its last write; a source file was
  // edited during the session; the session stops and compiles a while after that edit
  await new Promise((r) => setTimeout(r, RACY_MS + 100));
  const readAtMs = Date.now();
  await new Promise((r) => setTimeout(r, 20));
  Deno.writeTextFileSync(`${d.path}/src/a.js`, "console.log(3);\n");
  const c = await compileEnv(store, spec, { write: false, record: false });
  const scan = Date.now() + RACY_MS + 1000;
  const bind = { plain: true, envNames: [], readAtMs };
  assert(await saveQuickStatus(key, spec, proofSubject(spec, {}), c, scan, bind));
  assert((await loadBoundStatus(key, `${d.path}/hd.toml`)) !== null, "bound, and it holds");
  // hd.toml written after it was read: no proof
  Deno.writeTextFileSync(`${d.path}/hd.toml`, Deno.readTextFileSync(`${d.path}/hd.toml`));
  assertEquals(await saveQuickStatus(key, spec, proofSubject(spec, {}), c, scan, bind), false);
});
