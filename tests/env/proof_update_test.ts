/**
 * A status after files were edited in place, worked out from the saved proof
 * (src/env/proof_update.ts): on real files and a real store, for every kind of step input (a
 * file, a directory, a glob, the whole tree, a chain after them), every edit gives the status a
 * scan gives; more edits than MAX_EDITED, or an edit beside a structural change, mean a scan; a
 * tampered, foreign or missing `.hd/status.dirs` is never believed (updatedSummary says null and
 * the status still matches a scan).
 */
import { assert, assertEquals } from "../_assert.ts";
import { tempDir } from "../_helpers.ts";
import { Store } from "../../src/cas/store.ts";
import { type CompiledEnv, compileEnv } from "../../src/env/compile.ts";
import { fileChunks, getNode } from "../../src/dag/dag.ts";
import { gatherStatus, type Status } from "../../src/env/report.ts";
import {
  dirIndexPath,
  loadQuickStatus,
  MAX_EDITED,
  proofSubject,
  quickStatusPath,
  RACY_MS,
  saveQuickStatus,
  summaryOf,
} from "../../src/env/quick_status.ts";
import { DirIndex, updatedSummary } from "../../src/env/proof_update.ts";
import { loadSpec } from "../../src/config/parse.ts";

const TOML = `[environment]
name = "pu"
[build]
steps = [
  { run = "deps", inputs = ["package.json"] },
  { run = "lint", inputs = ["src/*.js"] },
  { run = "build", inputs = ["src/lib"] },
  "test",
]
`;

/** A project with a file in each place a step input reads, and one no input reads. */
function writeProject(dir: string): void {
  Deno.mkdirSync(`${dir}/src/lib/deep`, { recursive: true });
  Deno.mkdirSync(`${dir}/docs`, { recursive: true });
  Deno.writeTextFileSync(`${dir}/hd.toml`, TOML);
  Deno.writeTextFileSync(`${dir}/package.json`, '{ "name": "pu" }\n');
  Deno.writeTextFileSync(`${dir}/src/a.js`, "console.log(1);\n");
  Deno.writeTextFileSync(`${dir}/src/b.ts`, "export const b = 1;\n");
  Deno.writeTextFileSync(`${dir}/src/lib/c.js`, "module.exports = 3;\n");
  Deno.writeTextFileSync(`${dir}/src/lib/deep/d.js`, "module.exports = 4;\n");
  Deno.writeTextFileSync(`${dir}/docs/readme.md`, "# pu\n");
  Deno.symlinkSync("a.js", `${dir}/src/link.js`);
}

/** A written project and a store, with the proof a scan saved (as of after the racy window). */
async function saved() {
  const d = tempDir("hd-pu-");
  const s = tempDir("hd-store-");
  writeProject(d.path);
  const store = Store.open(s.path, { create: true });
  const spec = loadSpec(`${d.path}/hd.toml`);
  const c = await compileEnv(store, spec, { write: false, record: false });
  const ok = await saveQuickStatus(
    store.identity().key,
    spec,
    proofSubject(spec, {}),
    c,
    Date.now() + RACY_MS + 1000,
  );
  assert(ok, "the proof is saved");
  return {
    path: d.path,
    store,
    spec,
    c,
    [Symbol.dispose]() {
      s[Symbol.dispose]();
      d[Symbol.dispose]();
    },
  };
}

/** Where `needle` starts in `hay`, or -1. */
function indexOf(hay: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let k = 0; k < needle.length; k++) if (hay[i + k] !== needle[k]) continue outer;
    return i;
  }
  return -1;
}

/** A status with the stat cache's count left out (a scan and the proof count hits alike). */
function comparable(st: Status): Status {
  return { ...st, tree: { ...st.tree, cacheHits: 0 } };
}

Deno.test("proof update: every in-place edit gives the status a scan gives, whichever step reads the file", async () => {
  const edits: [string, (dir: string) => void, string[]][] = [
    ["a file input", (dir) => Deno.writeTextFileSync(`${dir}/package.json`, '{ "name": "px" }\n'), [
      "package.json",
    ]],
    [
      "a glob input's match",
      (dir) => Deno.writeTextFileSync(`${dir}/src/a.js`, "console.log(2);\n"),
      [
        "src/a.js",
      ],
    ],
    [
      "beside a glob's matches (src/b.ts)",
      (dir) => Deno.writeTextFileSync(`${dir}/src/b.ts`, "x\n"),
      [
        "src/b.ts",
      ],
    ],
    [
      "deep in a directory input",
      (dir) => Deno.writeTextFileSync(`${dir}/src/lib/deep/d.js`, "4\n"),
      [
        "src/lib/deep/d.js",
      ],
    ],
    [
      "read by no input but the chained step",
      (dir) => Deno.writeTextFileSync(`${dir}/docs/readme.md`, "#\n"),
      [
        "docs/readme.md",
      ],
    ],
    ["made executable", (dir) => Deno.chmodSync(`${dir}/src/lib/c.js`, 0o755), ["src/lib/c.js"]],
    ["grown past a chunk (several chunks now)", (dir) => {
      const big = new Uint8Array(3 << 20);
      for (let i = 0; i < big.length; i++) big[i] = (i * 2654435761) >>> 24;
      Deno.writeFileSync(`${dir}/src/lib/c.js`, big);
    }, ["src/lib/c.js"]],
    ["three at once, two in one directory", (dir) => {
      Deno.writeTextFileSync(`${dir}/src/a.js`, "console.log(5);\n");
      Deno.writeTextFileSync(`${dir}/src/b.ts`, "export const b = 5;\n");
      Deno.writeTextFileSync(`${dir}/docs/readme.md`, "five\n");
    }, ["docs/readme.md", "src/a.js", "src/b.ts"]],
  ];
  for (const [what, edit, paths] of edits) {
    using p = await saved();
    const before = await gatherStatus(p.store, p.spec);
    edit(p.path);
    const q = await loadQuickStatus(p.store.identity().key, p.spec, proofSubject(p.spec, {}));
    assertEquals(q?.changed.toSorted(), paths, `the proof names the edits: ${what}`);
    const fromProof = updatedSummary(p.spec, q!.summary, q!);
    assert(fromProof !== null, `worked out from the proof: ${what}`);
    const quick = await gatherStatus(p.store, p.spec);
    const scan = await gatherStatus(p.store, p.spec, undefined, { quick: false });
    assertEquals(comparable(quick), comparable(scan), what);
    assertEquals(quick.tree.root, fromProof.filesRoot, what);
    assert(quick.tree.root !== before.tree.root, `the edit is seen: ${what}`);
  }
});

Deno.test("proof update: more changed paths than it takes mean a scan; files created count as their directory", async () => {
  {
    using p = await saved();
    for (let i = 0; i <= MAX_EDITED; i++) {
      Deno.writeTextFileSync(`${p.path}/docs/f${i}.md`, `${i}\n`);
    }
    // files created: one changed directory, whatever the count
    const q = await loadQuickStatus(p.store.identity().key, p.spec, proofSubject(p.spec, {}));
    assertEquals([q?.changed, q?.dirs], [[], ["docs"]]);
    const scan = await gatherStatus(p.store, p.spec, undefined, { quick: false });
    assertEquals(updatedSummary(p.spec, q!.summary, q!)?.filesRoot, scan.tree.root);
    assertEquals(scan.tree.files, 8 + MAX_EDITED + 1);
  }
  {
    // MAX_EDITED + 1 files in the proof, all edited in place
    const d = tempDir("hd-pu-");
    using s = tempDir("hd-store-");
    using _d = d;
    Deno.mkdirSync(`${d.path}/src`);
    Deno.writeTextFileSync(`${d.path}/hd.toml`, `[environment]\nname = "many"\n`);
    for (let i = 0; i <= MAX_EDITED; i++) Deno.writeTextFileSync(`${d.path}/src/f${i}`, "a");
    const store = Store.open(s.path, { create: true });
    const spec = loadSpec(`${d.path}/hd.toml`);
    const c = await compileEnv(store, spec, { write: false, record: false });
    const key = store.identity().key;
    const subject = proofSubject(spec, {});
    assert(await saveQuickStatus(key, spec, subject, c, Date.now() + RACY_MS + 1000));
    for (let i = 0; i < MAX_EDITED; i++) Deno.writeTextFileSync(`${d.path}/src/f${i}`, "b");
    assertEquals((await loadQuickStatus(key, spec, subject))?.changed.length, MAX_EDITED);
    Deno.writeTextFileSync(`${d.path}/src/f${MAX_EDITED}`, "b");
    assertEquals(await loadQuickStatus(key, spec, subject), null, "one more: a scan");
    const scan = await gatherStatus(store, spec, undefined, { quick: false });
    assertEquals((await gatherStatus(store, spec)).tree.root, scan.tree.root);
  }
  {
    // as many changed directories as files edited in place: the same limit
    using p = await saved();
    for (let i = 0; i < MAX_EDITED; i++) Deno.mkdirSync(`${p.path}/docs/d${i}`);
    // docs changed, and its new directories are not in the proof: one path
    assertEquals(
      (await loadQuickStatus(p.store.identity().key, p.spec, proofSubject(p.spec, {})))?.dirs,
      ["docs"],
    );
  }
});

Deno.test("proof update: a tampered, foreign or missing .hd/status.dirs is not believed", async () => {
  using p = await saved();
  const key = p.store.identity().key;
  const subject = proofSubject(p.spec, {});
  const index = dirIndexPath(p.spec);
  const good = Deno.readFileSync(index);
  Deno.writeTextFileSync(`${p.path}/src/lib/deep/d.js`, "module.exports = 40;\n");
  const q = (await loadQuickStatus(key, p.spec, subject))!;
  assertEquals(q.changed, ["src/lib/deep/d.js"]);
  const scan = comparable(await gatherStatus(p.store, p.spec, undefined, { quick: false }));
  const proofPath = quickStatusPath(p.spec);
  const proof = Deno.readFileSync(proofPath);
  /** Puts `bytes` (or a symlink to `link`, or nothing) at the index, then checks what is believed. */
  const check = async (
    what: string,
    believed: boolean,
    bytes: Uint8Array | null,
    link?: string,
  ) => {
    // a scan that cannot save a proof (the edit is within its racy window) removes both files
    Deno.writeFileSync(proofPath, proof);
    try {
      Deno.removeSync(index);
    } catch { /* none */ }
    if (bytes) Deno.writeFileSync(index, bytes);
    if (link) Deno.symlinkSync(link, index);
    const got = updatedSummary(p.spec, q.summary, q);
    assertEquals(got !== null, believed, what);
    if (got) assertEquals(got.filesRoot, scan.tree.root, what);
    assertEquals(comparable(await gatherStatus(p.store, p.spec)), scan, `a scan's status: ${what}`);
  };
  await check("the index as saved", true, good);
  // one byte of a node's encoding changed (the first record's last byte): it no longer hashes to
  // its id
  const flipped = good.slice();
  const len = new DataView(good.buffer).getUint32(32, true);
  flipped[36 + len - 1] ^= 1;
  await check("a node's bytes changed", false, flipped);
  // a byte inside the File node of src/lib/c.js, embedded in src/lib's Dir node (a directory on
  // the edited path, whose other entries the new tree keeps): only its hash tells
  const sibling = good.slice();
  const at = indexOf(good, new TextEncoder().encode("c.js"));
  assert(at > 0, "src/lib's node holds c.js");
  sibling[at + 20] ^= 1;
  await check("a sibling's File node changed", false, sibling);
  // every record's id rewritten to the id of the record after it: each node under another's id
  const shuffled = good.slice();
  const offs: number[] = [];
  for (let o = 0; o < good.length;) {
    (offs.push(o), o += 36 + new DataView(good.buffer).getUint32(o + 32, true));
  }
  assert(offs.length > 2, "several directories");
  offs.forEach((o, i) =>
    shuffled.set(good.subarray(offs[(i + 1) % offs.length], offs[(i + 1) % offs.length] + 32), o)
  );
  await check("ids swapped between records", false, shuffled);
  await check("truncated", false, good.subarray(0, good.length - 3));
  // another project's index (well formed, real nodes, another tree)
  using other = await saved();
  Deno.writeTextFileSync(`${other.path}/docs/readme.md`, "another\n");
  const c2 = await compileEnv(other.store, loadSpec(`${other.path}/hd.toml`), {
    write: false,
    record: false,
  });
  Deno.removeSync(dirIndexPath(other.spec));
  await saveQuickStatus(key, other.spec, proofSubject(other.spec, {}), c2, Date.now() + 10_000);
  const foreign = Deno.readFileSync(dirIndexPath(other.spec));
  Deno.writeFileSync(index, foreign);
  assert(DirIndex.read(index) !== null, "another tree's index is well formed");
  await check("another tree's index", false, foreign);
  await check("none", false, null);
  await check("a symlink to a good index", false, null, dirIndexPath(other.spec));
  Deno.writeFileSync(dirIndexPath(other.spec), good);
  await check("a symlink to this index's bytes", false, null, dirIndexPath(other.spec));
  await check("restored", true, good);
  assertEquals(summaryOf(p.c).filesRoot, q.summary.filesRoot);
});

Deno.test("proof update: a writing compile takes the recorded tree from the proof (edits ingested), as a scan would make it", async () => {
  using p = await saved();
  const scanOf = () => compileEnv(p.store, p.spec, { record: false });
  const fromProof = () => compileEnv(p.store, p.spec, { fromProof: true });
  const same = (a: CompiledEnv, b: CompiledEnv, what: string) => {
    assertEquals(
      [a.filesRoot, a.envId, a.steps.map((s) => s.id), a.files, a.bytes, a.walked.toSorted()],
      [b.filesRoot, b.envId, b.steps.map((s) => s.id), b.files, b.bytes, b.walked.toSorted()],
      what,
    );
  };
  // the proof's tree is not the store's recorded one yet (a status stores nothing): a scan
  const first = await fromProof();
  assert(first.statCache !== undefined, "no tree recorded: scanned");
  // recorded now (trees/pu is the proof's root): the proof's tree, nothing scanned
  const again = await fromProof();
  assertEquals(again.statCache, undefined, "taken from the proof");
  same(again, await scanOf(), "unchanged");
  // an edit in place (and a file grown past several chunks): ingested into the store
  Deno.writeTextFileSync(`${p.path}/src/lib/deep/d.js`, "module.exports = 41;\n");
  const big = new Uint8Array(3 << 20);
  for (let i = 0; i < big.length; i++) big[i] = (i * 2246822519) >>> 24;
  Deno.writeFileSync(`${p.path}/docs/readme.md`, big);
  const edited = await fromProof();
  assertEquals(edited.statCache, undefined, "edited in place: still from the proof");
  same(edited, await scanOf(), "edited");
  assert(edited.filesRoot !== again.filesRoot, "the edit is in the tree");
  assertEquals(p.store.getRef("trees/pu"), edited.filesRoot, "recorded");
  // what it wrote is whole: every object below the new root can be read from the store
  const walk = (id: string): number => {
    const n = getNode(p.store, id);
    if (n.type !== "dir") throw new Error("not a dir");
    let files = 0;
    for (const e of n.entries) {
      if (e.dir !== undefined) files += walk(e.dir);
      else (fileChunks(p.store, e.file).forEach((c) => p.store.getObject(c)), files++);
    }
    return files;
  };
  assertEquals(walk(edited.filesRoot), edited.files);
  // the recorded tree is now the edited one, not the proof's (saved before the edits): a scan
  assert((await fromProof()).statCache !== undefined, "another tree recorded: scanned");
  // the proof's own tree recorded again: from the proof, with both edits
  p.store.setRef("trees/pu", again.filesRoot);
  const back = await fromProof();
  assertEquals(back.statCache, undefined, "the proof's tree recorded");
  same(back, edited, "the same edits");
  // paths left out of the tree (hd's own output): never from the proof
  assert(
    (await compileEnv(p.store, p.spec, { fromProof: true, exclude: ["docs"] })).statCache !==
      undefined,
    "with exclude: scanned",
  );
});

/** An atomic save, as editors make one: the new content written beside, then renamed over. */
function saveByRename(path: string, text: string): void {
  Deno.writeTextFileSync(`${path}.tmp~`, text);
  Deno.renameSync(`${path}.tmp~`, path);
}

/**
 * Entries added, removed, renamed or replaced since the proof (its directories changed): the
 * status worked out from the proof and the directories' listings is the status a scan gives, and
 * so is a writing compile's tree, file count and walked directories. [what, change, whether the
 * proof still serves (false: a scan must see it)]
 */
const STRUCTURAL: [string, (dir: string) => void, boolean][] = [
  ["a file saved by rename (an editor's atomic save)", (dir) => {
    saveByRename(`${dir}/src/a.js`, "console.log(9);\n");
  }, true],
  ["a file created", (dir) => Deno.writeTextFileSync(`${dir}/src/new.js`, "new\n"), true],
  ["a file created at the root", (dir) => Deno.writeTextFileSync(`${dir}/NOTES`, "n\n"), true],
  ["a file removed", (dir) => Deno.removeSync(`${dir}/src/lib/c.js`), true],
  ["a file renamed", (dir) => Deno.renameSync(`${dir}/src/a.js`, `${dir}/src/z.js`), true],
  ["a file moved to another directory", (dir) => {
    Deno.renameSync(`${dir}/src/lib/c.js`, `${dir}/docs/c.js`);
  }, true],
  ["an edit in place beside a new file", (dir) => {
    Deno.writeTextFileSync(`${dir}/src/b.ts`, "export const b = 2;\n");
    Deno.writeTextFileSync(`${dir}/src/lib/e.js`, "e\n");
  }, true],
  ["a directory tree created", (dir) => {
    Deno.mkdirSync(`${dir}/src/feature/deep/er`, { recursive: true });
    Deno.writeTextFileSync(`${dir}/src/feature/f.js`, "f\n");
    Deno.writeTextFileSync(`${dir}/src/feature/deep/er/g.js`, "g\n");
    Deno.mkdirSync(`${dir}/src/feature/empty`);
  }, true],
  ["an empty directory created", (dir) => Deno.mkdirSync(`${dir}/docs/none`), true],
  ["a directory removed, with what is below it", (dir) => {
    Deno.removeSync(`${dir}/src/lib`, { recursive: true });
  }, true],
  ["a directory renamed", (dir) => Deno.renameSync(`${dir}/src/lib`, `${dir}/src/lib2`), true],
  ["a file replaced by a directory", (dir) => {
    Deno.removeSync(`${dir}/docs/readme.md`);
    Deno.mkdirSync(`${dir}/docs/readme.md`);
    Deno.writeTextFileSync(`${dir}/docs/readme.md/x`, "x\n");
  }, true],
  ["a directory replaced by a file", (dir) => {
    Deno.removeSync(`${dir}/src/lib/deep`, { recursive: true });
    Deno.writeTextFileSync(`${dir}/src/lib/deep`, "now a file\n");
  }, true],
  ["a directory emptied", (dir) => Deno.removeSync(`${dir}/docs/readme.md`), true],
  ["a directory's mode changed", (dir) => Deno.chmodSync(`${dir}/docs`, 0o700), true],
  ["a symlink created", (dir) => Deno.symlinkSync("../a.js", `${dir}/src/lib/l.js`), true],
  ["files created where the filter leaves them out", (dir) => {
    Deno.mkdirSync(`${dir}/.git/objects`, { recursive: true });
    Deno.writeTextFileSync(`${dir}/.git/objects/i`, "i\n");
    Deno.writeTextFileSync(`${dir}/src/.DS_Store`, "x");
  }, true],
  ["a FIFO created (a scan skips it and saves no proof)", (dir) => {
    new Deno.Command("mkfifo", { args: [`${dir}/src/pipe`] }).outputSync();
  }, false],
];

Deno.test("proof update: entries added, removed, renamed or replaced give the status a scan gives", async () => {
  for (const [what, change, serves] of STRUCTURAL) {
    using p = await saved();
    const before = await gatherStatus(p.store, p.spec);
    change(p.path);
    const q = await loadQuickStatus(p.store.identity().key, p.spec, proofSubject(p.spec, {}));
    assert(q !== null && q.dirs.length > 0, `the proof names a changed directory: ${what}`);
    const fromProof = updatedSummary(p.spec, q.summary, q);
    assertEquals(fromProof !== null, serves, `worked out from the proof: ${what}`);
    const quick = await gatherStatus(p.store, p.spec);
    const scan = await gatherStatus(p.store, p.spec, undefined, { quick: false });
    assertEquals(comparable(quick), comparable(scan), what);
    if (!fromProof) continue;
    assertEquals(
      [fromProof.filesRoot, fromProof.files, fromProof.bytes, fromProof.envId],
      [scan.tree.root, scan.tree.files, scan.tree.bytes, scan.env.id],
      what,
    );
    const unchanged = what.startsWith("files created where");
    assertEquals(scan.tree.root === before.tree.root, unchanged, `seen (or not): ${what}`);
  }
});

Deno.test("proof update: with include patterns, an emptied directory leaves the tree and a new file in an empty one joins it, as in a scan", async () => {
  const cases: [string, (dir: string) => void][] = [
    ["the only file of a directory removed", (dir) => Deno.removeSync(`${dir}/src/lib/deep/d.js`)],
    ["a file created in a directory the tree left out (empty)", (dir) => {
      Deno.writeTextFileSync(`${dir}/src/hollow/h.js`, "h\n");
    }],
    ["a file created in a new directory below one left out", (dir) => {
      Deno.mkdirSync(`${dir}/src/hollow/in`);
      Deno.writeTextFileSync(`${dir}/src/hollow/in/h.js`, "h\n");
    }],
    ["a file the includes leave out created", (dir) => {
      Deno.writeTextFileSync(`${dir}/src/lib/notes.txt`, "t\n");
    }],
  ];
  for (const [what, change] of cases) {
    using p = await saved();
    Deno.writeTextFileSync(
      `${p.path}/hd.toml`,
      TOML.replace("[build]", '[files]\ninclude = ["src/**/*.js", "src/*.ts", "hd.toml"]\n[build]'),
    );
    Deno.mkdirSync(`${p.path}/src/hollow`);
    const spec = loadSpec(`${p.path}/hd.toml`);
    const c = await compileEnv(p.store, spec, { write: false, record: false });
    assert(!c.tree.get("src/hollow"), "an empty directory is left out with includes");
    const ok = await saveQuickStatus(
      p.store.identity().key,
      spec,
      proofSubject(spec, {}),
      c,
      Date.now() + RACY_MS + 1000,
    );
    assert(ok, what);
    change(p.path);
    const q = await loadQuickStatus(p.store.identity().key, spec, proofSubject(spec, {}));
    assert(q !== null && q.dirs.length > 0, `the proof names a changed directory: ${what}`);
    const fromProof = updatedSummary(spec, q.summary, q);
    const scan = await gatherStatus(p.store, spec, undefined, { quick: false });
    assertEquals(
      [fromProof?.filesRoot, fromProof?.files, fromProof?.bytes],
      [scan.tree.root, scan.tree.files, scan.tree.bytes],
      what,
    );
  }
});

Deno.test("proof update: a writing compile takes the proof's tree with entries added, removed or replaced, and walks what a scan walks", async () => {
  for (const [what, change, serves] of STRUCTURAL) {
    using p = await saved();
    // recorded: a writing compile from the proof, then its proof saved (as hd up's loop does)
    await compileEnv(p.store, p.spec, { fromProof: true });
    const rec = await compileEnv(p.store, p.spec, { fromProof: true });
    assertEquals(rec.statCache, undefined, `from the proof before: ${what}`);
    change(p.path);
    const got = await compileEnv(p.store, p.spec, { fromProof: true });
    assertEquals(got.statCache === undefined, serves, `from the proof: ${what}`);
    const scan = await compileEnv(p.store, p.spec, { record: false, noCache: true });
    assertEquals(
      [got.filesRoot, got.files, got.bytes, got.walked.toSorted()],
      [scan.filesRoot, scan.files, scan.bytes, scan.walked.toSorted()],
      what,
    );
    // the proof saved from it (walked directories and tracked files) sees the next change
    if (!serves) continue;
    assert(
      await saveQuickStatus(
        p.store.identity().key,
        p.spec,
        proofSubject(p.spec, {}),
        got,
        Date.now() + RACY_MS + 1000,
      ),
      `a proof saved: ${what}`,
    );
    Deno.writeTextFileSync(`${p.path}/src/later.js`, "later\n");
    const next = await compileEnv(p.store, p.spec, { fromProof: true });
    const rescan = await compileEnv(p.store, p.spec, { record: false, noCache: true });
    assertEquals(next.filesRoot, rescan.filesRoot, `the next change: ${what}`);
  }
});
