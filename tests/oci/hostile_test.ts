/**
 * Hostile and damaged layers are refused by `hd pull` with a clear error, and nothing is recorded
 * (no image ref, no layer ref) nor written outside the store.
 */
import { lexists as exists } from "../../src/sys/fs.ts";
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { hd, tempDir } from "../_helpers.ts";
import { Store } from "../../src/cas/store.ts";
import { gzip, makeTar, type TarSpec, writeLayout } from "./_fixtures.ts";

async function refused(
  entries: TarSpec[] | Uint8Array,
  expect: string,
  opts: { diffId?: string; size?: number } = {},
): Promise<void> {
  using tmp = tempDir("hd-oci-hostile-");
  const layout = `${tmp.path}/layout`;
  const tar = entries instanceof Uint8Array ? entries : makeTar(entries);
  writeLayout(layout, "1", [
    { tar: makeTar([{ path: "ok.txt", data: "fine" }]) },
    { tar, diffId: opts.diffId, size: opts.size },
  ]);
  const store = `${tmp.path}/store`;
  const r = await hd(["pull", `oci:${layout}:1`], { store });
  assertEquals(r.code, 1, r.stdout + r.stderr);
  assertIncludes(r.stderr, "error: Cannot unpack layer");
  assertIncludes(r.stderr, expect);
  assertIncludes(r.stderr, "hint:");
  const refs = Store.open(store, { create: false }).listRefs();
  assertEquals(refs, [], "no ref recorded");
  assert(!exists(`${tmp.path}/outside/passwd`), "nothing written through the symlink");
  assert(!exists(`${tmp.path}/evil`), "nothing written next to the layout");
}

Deno.test("a ../ path is refused", async () => {
  await refused([{ path: "a/../../evil", data: "x" }], "leaves the root");
});

Deno.test("an absolute path is refused", async () => {
  await refused([{ path: "/etc/evil", data: "x" }], "absolute path");
});

Deno.test("writing through a symlink that points out of the root is refused", async () => {
  const outside = Deno.makeTempDirSync();
  try {
    await refused(
      [
        { path: "evil", type: "symlink", link: outside },
        { path: "evil/passwd", data: "pwned" },
      ],
      "written through the symlink",
    );
    await refused(
      [
        { path: "d/", type: "dir" },
        { path: "d/up", type: "symlink", link: "../../../../../../tmp" },
        { path: "d/up/passwd", data: "pwned" },
      ],
      'through the symlink "d/up"',
    );
    assertEquals([...Deno.readDirSync(outside)], []);
  } finally {
    Deno.removeSync(outside, { recursive: true });
  }
});

Deno.test("a hardlink to nothing is refused", async () => {
  await refused([{ path: "x", type: "hardlink", link: "no/such/file" }], "not in the image");
});

Deno.test("a gzip bomb is refused at the ratio cap", async () => {
  // 160 MiB of zeros compress to ~160 KiB: far over 100× once past the 64 MiB floor.
  const tar = makeTar([{ path: "zeros", zeros: 160 << 20 }]);
  assert(gzip(tar).length < 1 << 20);
  await refused(tar, "decompression bomb");
});

Deno.test("a layer whose tar does not match the config's diff_id is refused", async () => {
  await refused(
    [{ path: "a", data: "a" }],
    "not the config's diff_id",
    { diffId: "sha256:" + "0".repeat(64) },
  );
});

Deno.test("a malformed tar is refused", async () => {
  const tar = makeTar([{ path: "a", data: "hello" }]);
  tar[148] = 0x39; // break the header checksum
  await refused(tar, "malformed");
});

Deno.test("a blob larger than its descriptor says is refused", async () => {
  await refused([{ path: "a", data: "a".repeat(5000) }], "larger than the 10 bytes", { size: 10 });
});

Deno.test("hostile xattrs are refused: over 64 KiB, no namespace, overlayfs's own", async () => {
  await refused(
    [{ path: "big", data: "x", xattrs: { "user.big": new Uint8Array(64 * 1024 + 1) } }],
    'xattr "user.big" of 65537 bytes, over the 65536-byte limit',
  );
  await refused([{ path: "bare", data: "x", xattrs: { capability: "x" } }], "has no namespace");
  await refused([{ path: "dot", data: "x", xattrs: { "user.": "x" } }], "has no namespace");
  await refused(
    [{ path: "d/", type: "dir", xattrs: { "trusted.overlay.redirect": "/etc" } }],
    "would steer overlayfs",
  );
});

Deno.test("a 5,000-component path is refused at the depth limit, not by a stack overflow", async () => {
  const deep = Array.from({ length: 5000 }, () => "a").join("/") + "/f";
  await refused([{ path: deep, data: "x" }], "deeper than the 1024-component limit");
});
