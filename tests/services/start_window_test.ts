/**
 * What is written between the check of the project's proof a start's tree comes from and the
 * watcher's start is found (src/services/loop.ts's check after the start), and so is what is
 * written while a start's scan reads and after it (the watcher starts before the scan; what it sees
 * is applied once the start is done): before, either was never seen until written again. The window is made deterministic: the loop's "root" event (after the
 * compile, before the watcher) writes the files. And a compile given an earlier check of the same
 * proof (the early services') takes it instead of checking again; given one of another proof, it
 * checks.
 * @module
 */
import { assert, assertEquals } from "../_assert.ts";
import { tempDir } from "../_helpers.ts";
import { Store } from "../../src/cas/store.ts";
import { DevLoop } from "../../src/services/loop.ts";
import { compileEnv } from "../../src/env/compile.ts";
import {
  loadQuickStatus,
  proofSubject,
  quickStatusPath,
  saveQuickStatus,
} from "../../src/env/quick_status.ts";
import type { EnvSpec } from "../../src/config/types.ts";
import { readFileContent } from "../../src/dag/dag.ts";
import { Tree } from "../../src/dag/tree.ts";
import { envSpec, waitFor } from "./_util.ts";
import { proofCovers } from "../../src/env/proof_update.ts";

/** A project of `n` files under data/, its spec and store, with a proof saved (past the racy window). */
async function project(dir: string, storeDir: string, n: number, stepSeconds = 0.5) {
  Deno.mkdirSync(`${dir}/data/deep`, { recursive: true });
  for (let i = 0; i < n; i++) Deno.writeTextFileSync(`${dir}/data/f${i}.txt`, `v0 ${i}`);
  Deno.writeTextFileSync(`${dir}/data/deep/x.txt`, "x");
  // a step that takes a while: what the watcher sees while it runs is held until the start is done
  const step = {
    run: `sleep ${stepSeconds}`,
    inputs: ["no-such-input"],
    outputs: [],
    env: {},
    network: "host" as const,
    index: 0,
  };
  const spec: EnvSpec = envSpec(dir, {
    build: { steps: [step], cache: [] },
    options: { restartGraceMs: 1000, debounceMs: 50 },
  });
  const store = Store.open(storeDir);
  await compileEnv(store, spec); // makes .hd/ (the project's directory changes)
  await new Promise((r) => setTimeout(r, 1100)); // the racy rule: ctimes a second old
  const start = Date.now();
  const c = await compileEnv(store, spec);
  assert(await saveQuickStatus(store.identity().key, spec, proofSubject(spec, {}), c, start));
  return { spec, store };
}

/** The content of `rel` in the tree the store records for the environment now, or null. */
function recorded(store: Store, spec: EnvSpec, rel: string): string | null {
  const t = Tree.load(store, store.getRef(`trees/${spec.environment.name}`)!);
  const f = t.get(rel);
  if (f === undefined || !("size" in f) || "entries" in f) return null;
  return new TextDecoder().decode(readFileContent(store, f as never));
}

const CASES: {
  what: string;
  files: number;
  write: (dir: string) => void;
  expect: string[][];
  /** How long the start's build step runs (the watcher's events meanwhile are held). */
  stepSeconds?: number;
}[] = [
  {
    what: "a file edited, one created, one in a new directory, one removed",
    files: 20,
    write: (dir) => {
      Deno.writeTextFileSync(`${dir}/data/f1.txt`, "v1 1");
      Deno.writeTextFileSync(`${dir}/new.txt`, "new");
      Deno.mkdirSync(`${dir}/data/deep/er`);
      Deno.writeTextFileSync(`${dir}/data/deep/er/y.txt`, "y");
      Deno.removeSync(`${dir}/data/f2.txt`);
    },
    expect: [["data/f1.txt", "v1 1"], ["new.txt", "new"], ["data/deep/er/y.txt", "y"]],
  },
  {
    what: "300 files edited (more than a proof names)",
    files: 300,
    write: (dir) => {
      for (let i = 0; i < 300; i++) Deno.writeTextFileSync(`${dir}/data/f${i}.txt`, `v1 ${i}`);
    },
    expect: [["data/f0.txt", "v1 0"], ["data/f299.txt", "v1 299"]],
  },
  {
    what: "10,050 files created (more than the watcher holds while a start is not done)",
    files: 5,
    stepSeconds: 3,
    write: (dir) => {
      // in a directory watched already: an event for each
      for (let i = 0; i < 10_050; i++) Deno.writeTextFileSync(`${dir}/data/n${i}.txt`, `n${i}`);
    },
    expect: [["data/n0.txt", "n0"], ["data/n10049.txt", "n10049"]],
  },
];

for (const [k, scan] of CASES.flatMap((k) => [[k, false], [k, true]] as const)) {
  const how = scan ? "a start by a scan" : "a start from the proof";
  Deno.test(`files written while hd up starts are found, ${how}: ${k.what}`, async () => {
    using tmp = tempDir();
    using st = tempDir();
    const { spec, store } = await project(tmp.path, `${st.path}/store`, k.files, k.stepSeconds);
    // without the stat cache, a scan reads every file: a start that read none used the proof
    Deno.removeSync(`${tmp.path}/.hd/statcache.json`);
    if (scan) Deno.removeSync(quickStatusPath(spec)); // no proof: a scan
    let read = -1;
    const loop = await DevLoop.open({
      spec,
      store,
      print: () => {},
      onEvent: (ev) => {
        if (ev.event !== "root") return;
        read = ev.read as number;
        k.write(tmp.path); // after the compile, before the watcher
      },
    });
    await loop.start();
    try {
      assertEquals(
        read,
        scan ? k.files + 1 : 0,
        scan ? "a scan read every file" : "from the proof",
      );
      await waitFor(
        () => k.expect.every(([rel, text]) => recorded(store, spec, rel) === text),
        "the files written while starting",
        10_000,
      );
      if (k.files === 20) assertEquals(recorded(store, spec, "data/f2.txt"), null, "removed");
    } finally {
      await loop.stop();
    }
  });
}

Deno.test("a compile takes an earlier check made for its subject, and checks again for another", async () => {
  using tmp = tempDir();
  using st = tempDir();
  const { spec, store } = await project(tmp.path, `${st.path}/store`, 5);
  const subject = proofSubject(spec, {});
  const q = await loadQuickStatus(store.identity().key, spec, subject);
  assert(q !== null, "the proof holds");
  // a file written over the proof since the check changes nothing the check took from it
  Deno.writeTextFileSync(quickStatusPath(spec), "garbage");
  Deno.writeTextFileSync(`${tmp.path}/data/f1.txt`, "edited after the check");
  const table: [string, string, boolean][] = [
    ["its subject: taken, the edit after it not seen", subject, false],
    ["another subject: checked again (the proof is gone: a scan), the edit seen", "other", true],
  ];
  for (const [what, subj, seen] of table) {
    const c = await compileEnv(store, spec, {
      fromProof: true,
      record: false,
      checked: { ...q, subject: subj },
    });
    assertEquals(c.proofEdits, seen ? undefined : 0, what);
    assertEquals(c.proofChanges?.changed, seen ? undefined : [], what);
    assertEquals(c.walked.length > 0, true, `${what}: the walked directories`);
    const f = c.tree.get("data/f1.txt")!;
    const text = new TextDecoder().decode(readFileContent(store, f as never));
    assertEquals(text, seen ? "edited after the check" : "v0 1", what);
  }
});

Deno.test("proofCovers: a later check that found nothing besides the earlier one's", () => {
  const c = (changed: string[], dirs: string[] = []) => ({ changed, dirs });
  const table: [string, ReturnType<typeof c> | undefined, ReturnType<typeof c> | null, boolean][] =
    [
      ["both found nothing", c([]), c([]), true],
      ["the same file", c(["a"]), c(["a"]), true],
      ["fewer (one written back)", c(["a", "b"]), c(["a"]), true],
      ["another file", c(["a"]), c(["a", "b"]), false],
      ["a directory besides", c(["a"]), c(["a"], ["d"]), false],
      ["the same directory", c([], ["d"]), c([], ["d"]), true],
      ["the proof no longer held", c([]), null, false],
      ["no earlier check (a scan)", undefined, c([]), false],
    ];
  for (const [what, earlier, later, want] of table) {
    assertEquals(proofCovers(earlier, later), want, what);
  }
});
