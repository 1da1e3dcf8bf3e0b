/**
 * The File node's hardlink group (tag 23): round-trips, changes the id only of files that have
 * one, and is what checkout links by (hardlinkKey).
 */
import { assertEquals, assertThrows } from "../_assert.ts";
import { decodeNode, encodeNode, type FileNode, nodeId } from "../../src/dag/node.ts";
import { hardlinkKey } from "../../src/dag/checkout.ts";

const base: FileNode = {
  type: "file",
  mode: 0o100755,
  size: 3,
  chunks: ["ab".repeat(32)],
  uid: 0,
  gid: 0,
  mtime: 1700000000,
};

Deno.test("File link: round trip; absent keeps the id; the key links only groups", () => {
  const linked: FileNode = { ...base, link: 2 };
  assertEquals(decodeNode(encodeNode(linked)), linked);
  assertEquals(decodeNode(encodeNode(base)), base);
  assertEquals(nodeId({ ...base, link: undefined }), nodeId(base), "absent = not written");
  assertEquals(nodeId(linked) === nodeId(base), false);
  assertEquals(hardlinkKey(base), null, "separate files with the same bytes stay separate");
  assertEquals(hardlinkKey(linked), nodeId(linked));
  assertEquals(hardlinkKey({ ...linked, mode: 0o120777, target: "x" }), null, "symlinks never");
  // a group 0 is malformed
  const bytes = encodeNode({ ...base, link: 1 });
  const bad = bytes.slice();
  bad[bad.length - 1] = 0;
  assertThrows(() => decodeNode(bad));
});
