/**
 * A copy step (`copy = [{ from, src, dst }]`) on real layers and a real overlay mount: a file to a
 * file, a file into a directory (`dst/`), a directory's contents, a path through an absolute
 * symlink (resolved inside the stage's root, never the host's), a relative symlink climbing out
 * (stays in the root: missing there, an error), a deleted file (whiteout), a missing path —
 * and the layer is recorded under the step's hash.
 * @module
 */
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { skipUnless, tempDir, testIf } from "../_helpers.ts";
import { Store } from "../../src/cas/store.ts";
import { captureLayer } from "../../src/sandbox/layers.ts";
import { runCopy } from "../../src/runtime/sandbox_steps.ts";
import { cachedLayer } from "../../src/runtime/step_cache.ts";
import { MemDir, Tree } from "../../src/dag/tree.ts";
import { readFileContent } from "../../src/dag/dag.ts";
import { blake3Hex } from "../../src/cas/hash.ts";
import type { BuildStepSpec, StepCopySpec } from "../../src/config/types.ts";
import { HdError } from "../../src/sys/errors.ts";

const skip = skipUnless({ root: true });

function layer(store: Store, dir: string, files: Record<string, string>): string {
  for (const [p, v] of Object.entries(files)) {
    const abs = `${dir}/${p}`;
    Deno.mkdirSync(abs.replace(/\/[^/]*$/, ""), { recursive: true });
    if (v.startsWith("->")) Deno.symlinkSync(v.slice(2), abs);
    else if (v === "WHITEOUT") {
      const r = new Deno.Command("mknod", { args: [abs, "c", "0", "0"] }).outputSync();
      assert(r.success, "mknod");
    } else Deno.writeTextFileSync(abs, v);
  }
  return captureLayer(store, dir).id;
}

function step(copy: StepCopySpec[], n: number) {
  const spec: BuildStepSpec = {
    run: "# copy",
    inputs: [],
    outputs: [],
    env: {},
    network: "none",
    index: n,
    copy,
  };
  return {
    id: blake3Hex(new TextEncoder().encode(`copy-test ${n} ${Math.random()}`)),
    index: n,
    spec,
  };
}

const text = (store: Store, tree: Tree, p: string) => {
  const f = tree.get(p);
  assert(f !== undefined && !(f instanceof MemDir), `${p} is a file in the layer`);
  return new TextDecoder().decode(readFileContent(store, f));
};

testIf(
  skip,
  "copy step: files, directories and symlinks resolved inside the stage's root",
  async () => {
    using tmp = tempDir("hd-copy-");
    const store = Store.open(`${tmp.path}/store`, { create: true });
    const l1 = layer(store, `${tmp.path}/l1`, {
      "etc/secret": "the stage's /etc\n",
      "out/app.txt": "app\n",
      "out/dir/a": "a\n",
      "out/dir/sub/b": "b\n",
      "out/gone": "deleted above\n",
      "out/esc": "->/etc",
      "out/rel": "->../../../../../../etc/hostname",
    });
    const l2 = layer(store, `${tmp.path}/l2`, { "out/gone": "WHITEOUT" });
    const layers = [l1, l2];
    const c = (src: string, dst: string): StepCopySpec => ({ from: "build", src, dst });
    const s = step([
      c("/out/app.txt", "/app/app.txt"),
      c("/out/app.txt", "/usr/local/bin/"),
      c("/out/dir", "/srv/d"),
      c("/out/esc/secret", "/srv/secret"),
    ], 3);
    const id = await runCopy(store, s, s.spec.copy!.map((copy) => ({ copy, layers })));
    assertEquals(cachedLayer(store, s.id), id);
    const t = Tree.load(store, id);
    assertEquals(text(store, t, "app/app.txt"), "app\n");
    assertEquals(text(store, t, "usr/local/bin/app.txt"), "app\n");
    assertEquals([text(store, t, "srv/d/a"), text(store, t, "srv/d/sub/b")], ["a\n", "b\n"]);
    assertEquals(text(store, t, "srv/secret"), "the stage's /etc\n");
    assertEquals([...t.root.entries.keys()].sort(), ["app", "srv", "usr"]);

    // each refusal names the step, the stage and the path; nothing is recorded
    for (
      const [src, why] of [
        ["/out/rel", "/out/rel does not exist in that stage"], // ../.. stops at the stage's root
        ["/out/gone", "/out/gone does not exist in that stage"], // deleted by a whiteout
        ["/nope", "/nope does not exist in that stage"],
      ]
    ) {
      const bad = step([c(src, "/x")], 7);
      let err: unknown = null;
      try {
        await runCopy(store, bad, [{ copy: bad.spec.copy![0], layers }]);
      } catch (e) {
        err = e;
      }
      assert(err instanceof HdError, String(err));
      assertIncludes(err.message, `Cannot build step 8 (copy from stage build): ${why}`);
      assertEquals(cachedLayer(store, bad.id), null);
    }
    assertEquals([...Deno.readDirSync(`${store.root}/tmp`)].length, 0, "no build dir left behind");
  },
);
