/**
 * Golden tests for the on-disk formats: node encodings and ids, manifests, pack files and FastCDC
 * boundaries. Hashes are forever: if one of these fails, a change altered what is written to disk
 * (every existing store and cache would disagree with it). Bump the format version instead.
 */
import { assertEquals } from "../_assert.ts";
import { randomBytes } from "../_helpers.ts";
import { encodeNode, type Node, nodeId } from "../../src/dag/node.ts";
import { S_IFDIR, S_IFLNK, S_IFREG } from "../../src/sys/mode.ts";
import { encodeManifest, manifestId } from "../../src/cas/manifest.ts";
import { PackBuilder } from "../../src/cas/pack.ts";
import { chunkBoundaries } from "../../src/cas/chunk.ts";
import { blake3Hex, toHex } from "../../src/cas/hash.ts";

const ID_A = "a".repeat(64);
const ID_B = "b".repeat(64);
const ID_C = "c".repeat(64);

const file: Node = { type: "file", mode: S_IFREG | 0o644, size: 5, chunks: [ID_A] };
const link: Node = { type: "file", mode: S_IFLNK | 0o777, size: 3, target: "a/b" };
const layerFile: Node = {
  type: "file",
  mode: S_IFREG | 0o755,
  size: 70_000,
  manifest: ID_B,
  uid: 1000,
  gid: 100,
  mtime: 1_700_000_000,
  xattrs: [["security.capability", new Uint8Array([1, 2, 3])], ["user.x", new Uint8Array([])]],
};
const dir: Node = {
  type: "dir",
  mode: S_IFDIR | 0o755,
  entries: [
    { name: "README", file: file as never },
    { name: "src", dir: ID_C },
    { name: "z", file: link as never },
  ],
};
const pkg: Node = {
  type: "package",
  provider: "npm",
  name: "left-pad",
  version: "1.3.0",
  artifact: "sha512-xyz",
  resolved: "https://registry.npmjs.org/left-pad/-/left-pad-1.3.0.tgz",
};
const step: Node = {
  type: "buildstep",
  command: "npm ci",
  inputs: [{ label: "package.json", id: ID_A }, { label: "previous", id: ID_B }],
  env: [["A", "1"], ["NODE_ENV", "development"]],
  outputs: ["node_modules"],
  cache: ["~/.npm"],
};
const env: Node = {
  type: "env",
  name: "demo",
  children: [{ role: "files", id: ID_A }, { role: "step", id: ID_B }],
};

/** [name, node, BLAKE3 of the encoding (= the node id)] — pinned. */
const NODES: [string, Node, string][] = [
  ["file", file, "6df6be9a9325b2730ded7aab68dffe757b348a91f1a33655285b563fd2f729ae"],
  ["symlink", link, "7e8bc67f4b69765b443ff128ead1f046e950bd8f5015063774f722090b91d2ff"],
  ["layer file", layerFile, "4ac0c57b3294fe06c6eb4c78d60e41e97fb50a79caeea76cbcf3d30a5e32b663"],
  ["dir", dir, "366e73b8c19d8bd67cc5c4763ee09f0f82364f7fa5592dd6440bc79911563ff5"],
  ["package", pkg, "5bbff692e6352018b9fa99a90a3b1fd31f41fc223572941bb7d7a160e51c241d"],
  ["buildstep", step, "1cbfc2e2bbf8c9f9bd84f8d073287574d12a5e1fda31c0854dce4533c48442bb"],
  ["env", env, "d64b2b8fca6030b1baba784c9ac18511a539b95c1d26e6de5b8de4f9b69f9cd8"],
];

Deno.test("golden: node encodings and ids", () => {
  for (const [name, node, want] of NODES) {
    const enc = encodeNode(node);
    assertEquals(nodeId(node), blake3Hex(enc), `${name}: id is BLAKE3 of the encoding`);
    assertEquals(nodeId(node), want, `${name}: encoding changed (hex ${toHex(enc)})`);
  }
  // the header: "hd", version 1, kind byte
  assertEquals(toHex(encodeNode(file).slice(0, 4)), "68640101");
  assertEquals(toHex(encodeNode(env).slice(0, 4)), "68640105");
});

Deno.test("golden: manifest encoding", () => {
  const m = { size: 200_000, chunks: [ID_A, ID_B, ID_C] };
  const enc = encodeManifest(m);
  assertEquals(toHex(enc.slice(0, 4)), toHex(new TextEncoder().encode("HDM1")));
  assertEquals(
    manifestId(m),
    "44980dc8ef2bbd016faa6ce60103afb904becdaab20f9916e1ce62ef940f99ff",
    `manifest changed (hex ${toHex(enc)})`,
  );
});

Deno.test("golden: pack file bytes and name", () => {
  const b = new PackBuilder();
  b.add("objects", ID_B, new Uint8Array([0, 1, 2, 3]));
  b.add("manifests", ID_A, new Uint8Array([0, 9]));
  b.add("objects", ID_A, new Uint8Array([0, 7, 7]));
  const { name, bytes, entries } = b.finish();
  assertEquals(entries.map((e) => `${e.kind}:${e.id[0]}@${e.offset}+${e.length}`), [
    "objects:a@10+3",
    "objects:b@4+4",
    "manifests:a@8+2",
  ]);
  assertEquals(bytes.length, 4 + 9 + 3 * 45 + 16);
  assertEquals(name, "e31f6913f29506d37ad0eaf62578a557252376de148d65a9beb15505e08ebdd1");
  assertEquals(
    blake3Hex(bytes),
    "65307dcde99407ca9eba91bda6c246352c119df35c1be934a209fe07ecc6cc54",
  );
});

Deno.test("golden: FastCDC boundaries of a fixed 1 MiB input", () => {
  const buf = randomBytes(1 << 20, 42);
  const cuts = [...chunkBoundaries(buf)].map(([s, e]) => e - s);
  assertEquals(cuts.reduce((a, b) => a + b, 0), 1 << 20);
  assertEquals(
    cuts.join(","),
    "29490,25565,5779,18227,20563,17410,16850,27845,4369,16526,22169,23025,32157,26342,19139,20245,20536,15289,10708,4332,30466,41182,43335,21104,4767,17653,16630,27115,17603,26920,7696,20273,13456,23607,28192,17358,17127,20777,19281,16016,21141,55151,18295,23555,17669,7339,14513,31085,11087,16948,24669",
  );
});
