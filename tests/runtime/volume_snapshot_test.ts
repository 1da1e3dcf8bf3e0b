/**
 * A volume's snapshot keeps the volume directory's own mode and owner (a database refuses a data
 * directory that is not 0700 and its own): `hd down`'s snapshot and the checkout that restores a
 * missing volume directory from it give back the same mode and owner.
 * @module
 */
import { assertEquals } from "../_assert.ts";
import { tempDir } from "../_helpers.ts";
import { Store } from "../../src/cas/store.ts";
import { getNode } from "../../src/dag/dag.ts";
import type { DirNode } from "../../src/dag/node.ts";
import { checkoutTree } from "../../src/dag/checkout.ts";
import { snapshotVolumes, volumeDir } from "../../src/runtime/volumes.ts";

Deno.test("snapshotVolumes keeps the volume directory's own mode and owner", async () => {
  using tmp = tempDir();
  const store = Store.open(`${tmp.path}/store`, { create: true });
  const dir = volumeDir(store, "app", "data");
  Deno.mkdirSync(dir, { recursive: true });
  Deno.writeTextFileSync(`${dir}/f`, "x\n");
  Deno.chmodSync(dir, 0o750);
  const root = Deno.uid() === 0;
  if (root) Deno.chownSync(dir, 1000, 1001);
  const [snap] = await snapshotVolumes(store, "app");
  const node = getNode(store, snap.tree) as DirNode;
  assertEquals(node.mode & 0o7777, 0o750);
  if (root) assertEquals([node.uid, node.gid], [1000, 1001]);
  Deno.removeSync(dir, { recursive: true });
  checkoutTree(store, snap.tree, dir);
  const st = Deno.statSync(dir);
  assertEquals(st.mode! & 0o7777, 0o750);
  if (root) assertEquals([st.uid, st.gid], [1000, 1001]);
  else console.log("not root: owners not checked");
});
