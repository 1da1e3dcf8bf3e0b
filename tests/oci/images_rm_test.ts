/** `hd images rm` forgets an image; `hd cas gc` then frees its objects and layer directories. */
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { hd, tempDir } from "../_helpers.ts";
import { exists } from "../../src/sys/fs.ts";
import { Store } from "../../src/cas/store.ts";
import { loadImage } from "../../src/oci/image.ts";
import { layerDir, materializeLayer } from "../../src/sandbox/layers.ts";
import { makeTar, writeLayout } from "./_fixtures.ts";

Deno.test("hd images rm, then hd cas gc frees the image's own objects and layer dirs", async () => {
  using tmp = tempDir("hd-rmi-");
  const store = `${tmp.path}/store`;
  const shared = makeTar([
    { path: "etc/", type: "dir" },
    { path: "etc/os", data: "shared base\n".repeat(200) },
  ]);
  const own = makeTar([{ path: "a.txt", data: "only in image a\n".repeat(300) }]);
  writeLayout(`${tmp.path}/a`, "1", [{ tar: shared }, { tar: own }]);
  writeLayout(`${tmp.path}/b`, "1", [{ tar: shared }]);
  for (const l of ["a", "b"]) {
    const r = await hd(["pull", `oci:${tmp.path}/${l}:1`], { store });
    assertEquals(r.code, 0, r.stderr);
  }
  const s = Store.open(store);
  const a = loadImage(s, `oci:${tmp.path}/a:1`)!;
  const [sharedTree, ownTree] = a.layers.map((l) => l.tree);
  // What the sandbox leaves behind: each layer materialized once (needs root for owners).
  const materialized = Deno.uid() === 0;
  if (materialized) { for (const t of [sharedTree, ownTree]) materializeLayer(s, t); }

  const bad = await hd(["images", "rm", "oci:/nowhere:1"], { store });
  assertEquals(bad.code, 1);
  assertIncludes(bad.stderr, "Cannot remove image oci:/nowhere:1: not pulled");

  const rm = await hd(["images", "rm", `oci:${tmp.path}/a:1`, "--json"], { store });
  assertEquals(rm.code, 0, rm.stderr);
  assertEquals(JSON.parse(rm.stdout).removed[0].layerRefs.length, 1, "the shared layer stays");
  assertEquals(JSON.parse((await hd(["images", "--json"], { store })).stdout).length, 1);

  const gc = JSON.parse((await hd(["cas", "gc", "--json"], { store })).stdout);
  assert(gc.removedObjects > 0, "image a's own objects were freed");
  if (materialized) {
    assert(!exists(layerDir(s, ownTree)), "the unreferenced layer dir was removed");
    assert(exists(layerDir(s, sharedTree)), "the layer image b uses stays");
    assertEquals(gc.layerDirs.removed, 1);
  }
  assertEquals((await hd(["cas", "verify"], { store })).code, 0);
  const b = await hd(["pull", `oci:${tmp.path}/b:1`, "--json"], { store });
  assertEquals(JSON.parse(b.stdout).upToDate, true, "image b is untouched");
});
