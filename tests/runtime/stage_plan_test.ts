/**
 * Build stages, the pure parts: which layers each step runs on (stepPlan: the environment's
 * chain, a stage's chain on its image, a copy's source root) and what a step's hash covers (a
 * stage's chain and image; a copy's source step, src and dst) — so that an edit of one stage never
 * re-runs another.
 */
import { assert, assertEquals } from "../_assert.ts";
import { Store } from "../../src/cas/store.ts";
import { tempDir } from "../_helpers.ts";
import { parseSpec } from "../../src/config/parse.ts";
import { stepPlan } from "../../src/runtime/sandbox_steps.ts";
import { copyCommand, stepHashes } from "../../src/env/step_hashes.ts";
import { MemDir, Tree } from "../../src/dag/tree.ts";
import { ingestBytes } from "../../src/scan/ingest.ts";

const te = new TextEncoder();
const IMG1 = "1".repeat(64);
const IMG2 = "2".repeat(64);

function spec(steps: string) {
  return parseSpec(
    `[environment]\nname = "a"\nbase = "debian:12"\n[build]\nsteps = [\n${steps}]\n`,
    "/p/hd.toml",
  );
}

const B = (run: string, more = "") =>
  `{ run = "${run}", stage = "b", image = "golang:1"${more} },\n`;
const T = (run: string) => `{ run = "${run}", stage = "t", image = "node:20" },\n`;
const CP = (from: string, src = "/out", dst = "/app/out") =>
  `{ copy = [{ from = "${from}", src = "${src}", dst = "${dst}" }] },\n`;

Deno.test("stepPlan: roots, copies and waits of each step", () => {
  const cases: {
    name: string;
    steps: string;
    roots: [string | null, number[]][];
    copies: [string | null, number[]][][];
    waits: number[][];
  }[] = [
    {
      name: "the environment's chain is unchanged; a stage's steps chain on its image",
      steps: '"apt", ' + B("dl", ', inputs = ["go.mod"]') + B("build") + '"after",\n',
      roots: [[null, []], ["golang:1", []], ["golang:1", [1]], [null, [0]]],
      copies: [[], [], [], []],
      waits: [[], [], [1], [0]],
    },
    {
      name:
        "a copy reads the stage's root after its last earlier step; later chained steps stack on it",
      steps: '"apt",\n' + B("dl") + B("build") + CP("b") + '"after",\n' + B("late"),
      roots: [[null, []], ["golang:1", []], ["golang:1", [1]], [null, []], [null, [0, 3]], [
        "golang:1",
        [1, 2],
      ]],
      copies: [[], [], [], [["golang:1", [1, 2]]], [], []],
      waits: [[], [], [1], [1, 2], [0, 1, 2, 3], [1, 2]],
    },
    {
      name: "a step with declared inputs in the environment does not stack on a copy",
      steps: B("build") + CP("b") + '{ run = "npm ci", inputs = ["package.json"] },\n',
      roots: [["golang:1", []], [null, []], [null, []]],
      copies: [[], [["golang:1", [0]]], []],
      waits: [[], [0], []],
    },
    {
      name: "two stages stay apart; a copy into a stage stays in that stage's chain",
      steps: B("build") + T("npm") +
        '{ stage = "t", copy = [{ from = "b", src = "/out", dst = "/x" }] },\n' + T("use") +
        CP("t", "/x", "/y"),
      roots: [["golang:1", []], ["node:20", []], ["node:20", [1]], ["node:20", [1, 2]], [null, []]],
      copies: [[], [], [["golang:1", [0]]], [], [["node:20", [1, 2, 3]]]],
      waits: [[], [], [0, 1], [0, 1, 2], [0, 1, 2, 3]],
    },
  ];
  for (const c of cases) {
    const plan = stepPlan(spec(c.steps));
    assertEquals(plan.map((p) => [p.root.image, p.root.steps]), c.roots, c.name);
    assertEquals(plan.map((p) => p.copies.map((r) => [r.image, r.steps])), c.copies, c.name);
    assertEquals(plan.map((p) => [...p.waits].sort((a, b) => a - b)), c.waits, c.name);
  }
});

function tree(files: Record<string, string>, store: Store): Tree {
  const t = new Tree(new MemDir());
  for (const [p, s] of Object.entries(files)) t.setFile(p, ingestBytes(store, te.encode(s)));
  return t;
}

Deno.test("step hashes: each stage chains on its own; a copy is its source's hash + src + dst", () => {
  using d = tempDir("hd-stage-hash-");
  const store = Store.open(d.path, { create: true });
  const files = { "go.mod": "module x\n", "main.go": "package main\n" };
  const base = B("dl", ', inputs = ["go.mod"]') + B("build") + '"apt",\n' + CP("b") + '"final",\n';
  const h = (steps: string, f: Record<string, string> = files) =>
    stepHashes(spec(steps), tree(f, store), { imageIds: { "golang:1": IMG1 } }).map((s) => s.id);
  const ref = h(base);
  const rows: [string, string, Record<string, string>, boolean[]][] = [
    // [what, steps, files, which of the 5 steps change]
    ["a source edit: the stage's chained build, the copy and the chained final step", base, {
      ...files,
      "main.go": "package main // edit\n",
    }, [false, true, true, true, true]],
    [
      "a final-stage edit: only that step",
      base.replace('"final"', '"final 2"'),
      files,
      [false, false, false, false, true],
    ],
    [
      "an environment step before the copy: not the stage, nor the copy; the chain after it",
      base.replace('"apt"', '"apt 2"'),
      files,
      [false, false, true, false, true],
    ],
    [
      "the copy's dst: the copy and after",
      base.replace('dst = "/app/out"', 'dst = "/srv/out"'),
      files,
      [false, false, false, true, true],
    ],
    [
      "the copy's src: the copy and after",
      base.replace('src = "/out"', 'src = "/out/bin"'),
      files,
      [false, false, false, true, true],
    ],
  ];
  for (const [what, steps, f, changed] of rows) {
    const got = h(steps, f);
    assertEquals(got.map((x, i) => x !== ref[i]), changed, what);
  }
  // the stage's image id enters its steps, the base's does not
  const other = stepHashes(spec(base), tree(files, store), { imageIds: { "golang:1": IMG2 } });
  assertEquals(other.map((s, i) => s.id !== ref[i]), [true, true, false, true, true]);
  const envBase = stepHashes(spec(base), tree(files, store), {
    imageIds: { "golang:1": IMG1 },
    baseId: "3".repeat(64),
  });
  assertEquals(envBase.map((s, i) => s.id !== ref[i]), [false, false, true, false, true]);
  assert(copyCommand([{ from: "b", src: "/a", dst: "/b" }]) !== copyCommand([]));
});
