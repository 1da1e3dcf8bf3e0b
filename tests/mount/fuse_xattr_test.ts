/**
 * The FUSE projection answers getxattr/listxattr from the stored nodes when asked to
 * (`FuseOptions.xattrs`), read-only, with ENODATA for a missing name; by default it keeps
 * answering ENOSYS (the kernel then stops asking), as before. Once xattr requests have come and a
 * walk of every Dir node has proven that the tree holds none (no xattrs, no opaque marker in a
 * layer view), it answers ENOSYS too; a tree holding one anywhere is answered from its nodes.
 */
import { assert, assertEquals } from "../_assert.ts";
import { REPO, skipUnless, tempDir, testIf } from "../_helpers.ts";
import { Store } from "../../src/cas/store.ts";
import { putNode } from "../../src/dag/dag.ts";
import { ingestBytes } from "../../src/scan/ingest.ts";
import { fuseSkip } from "./_util.ts";
import { xattrProof } from "../../src/mount/projected.ts";
import type { DirEntry, Node } from "../../src/dag/node.ts";

const te = new TextEncoder();
const CAP = new Uint8Array([1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);

/** Mounts `root` in a child process (so a stuck mount cannot hang the test runner). */
async function withServer(
  store: string,
  root: string,
  mnt: string,
  xattrs: boolean | "layers",
  fn: () => Promise<void>,
): Promise<void> {
  const code = `
    import { Store } from "${REPO}/src/cas/store.ts";
    import { Projection } from "${REPO}/src/mount/projected.ts";
    import { FuseServer } from "${REPO}/src/mount/fuse.ts";
    const fs = new Projection(Store.open(${JSON.stringify(store)}, { create: false }),
      ${JSON.stringify(root)}, { layerView: ${xattrs === "layers"} });
    const srv = new FuseServer(fs, null, { mountpoint: ${JSON.stringify(mnt)},
      xattrs: ${xattrs !== false}, log: () => {} });
    srv.mount();
    srv.serve();
    console.log("ready");
    const buf = new Uint8Array(16);
    while (((await Deno.stdin.read(buf)) ?? 0) > 0) { /* until stdin closes */ }
    await srv.stop();
    Deno.exit(0);
  `;
  Deno.mkdirSync(mnt, { recursive: true });
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", "--quiet", code],
    cwd: REPO,
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.getReader();
  let out = "";
  while (!out.includes("ready")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`server exited before mounting: ${out}`);
    out += new TextDecoder().decode(value);
  }
  try {
    await fn();
  } finally {
    await child.stdin.close();
    reader.releaseLock();
    await child.stdout.cancel();
    const st = await child.status;
    if (!st.success) {
      await new Deno.Command("fusermount3", { args: ["-uz", mnt] }).output().catch(() => {});
    }
  }
}

async function run(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  const o = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const d = new TextDecoder();
  return { code: o.code, out: d.decode(o.stdout) + d.decode(o.stderr) };
}

testIf(
  fuseSkip() ?? skipUnless({ commands: ["getfattr"] }),
  "FUSE getxattr/listxattr answer from the nodes when enabled, ENODATA when absent",
  async () => {
    using tmp = tempDir();
    const storePath = `${tmp.path}/store`;
    const store = Store.open(storePath);
    const f = ingestBytes(store, te.encode("#!/bin/sh\n"), 0o100755);
    const sub = putNode(store, {
      type: "dir",
      mode: 0o40755,
      entries: [],
      xattrs: [["user.dir", te.encode("d")]],
    });
    const root = putNode(store, {
      type: "dir",
      mode: 0o40755,
      entries: [
        {
          name: "ping",
          file: { ...f, xattrs: [["security.capability", CAP], ["user.n", te.encode("v")]] },
        },
        { name: "plain", file: f },
        { name: "sub", dir: sub },
      ],
    });
    store.setRef("test/xattr", root);
    const mnt = `${tmp.path}/mnt`;
    await withServer(storePath, root, mnt, true, async () => {
      const all = await run("getfattr", ["-h", "-d", "-m", "-", "-e", "hex", `${mnt}/ping`]);
      assertEquals(all.code, 0, all.out);
      assert(all.out.includes("security.capability=0x01000002002000000000000000000000"), all.out);
      assert(all.out.includes("user.n=0x76"), all.out);
      const one = await run("getfattr", [
        "--absolute-names",
        "--only-values",
        "-n",
        "user.dir",
        `${mnt}/sub`,
      ]);
      assertEquals(one.out, "d");
      const none = await run("getfattr", ["-n", "user.nope", `${mnt}/ping`]);
      assert(none.code !== 0 && /No such attribute/.test(none.out), none.out);
      const list = await run("getfattr", ["--absolute-names", "-d", "-m", "-", `${mnt}/plain`]);
      assertEquals(list.code, 0, list.out);
      assertEquals(list.out.trim(), "");
      const set = await run("setfattr", ["-n", "user.x", "-v", "1", `${mnt}/plain`]);
      assert(set.code !== 0, "read-only: setxattr is refused");
    });
    // Default: no handlers, as before (the kernel gets ENOSYS and reports no support).
    await withServer(storePath, root, `${tmp.path}/mnt2`, false, async () => {
      const r = await run("getfattr", ["-n", "user.n", `${tmp.path}/mnt2/ping`]);
      assert(r.code !== 0 && /not supported/i.test(r.out), r.out);
    });
  },
);

const dir = (entries: DirEntry[], xattrs?: [string, Uint8Array][]): Node => ({
  type: "dir",
  mode: 0o40755,
  entries,
  ...(xattrs ? { xattrs } : {}),
});
const FILE = { type: "file", mode: 0o100644, size: 0, chunks: [] } as unknown as Extract<
  DirEntry,
  { file: unknown }
>["file"];

/** Runs the proof over `nodes` to its end: its verdict, steps, and the ids read in order. */
function prove(nodes: Record<string, Node>, layerView: boolean, limit?: number) {
  const reads: string[] = [];
  const walk = xattrProof(
    "r",
    (id) => {
      reads.push(id);
      const n = nodes[id];
      if (!n) throw new Error(`no node ${id}`);
      return n;
    },
    layerView,
    limit,
  );
  let steps = 0;
  for (let s = walk.next();; s = walk.next(), steps++) {
    if (s.done) return { ok: s.value, steps, reads };
  }
}

Deno.test("xattrProof: true only when no Dir node holds an xattr or (layer view) an opaque marker", () => {
  const shared = dir([{ name: "f", file: FILE }]);
  const cases: { name: string; nodes: Record<string, Node>; layerView: boolean; ok: boolean }[] = [
    { name: "empty root", nodes: { r: dir([]) }, layerView: true, ok: true },
    {
      name: "plain tree, a subtree shared by two layers",
      nodes: { r: dir([{ name: "a", dir: "s" }, { name: "b", dir: "s" }]), s: shared },
      layerView: true,
      ok: true,
    },
    {
      name: "a file's xattr three levels down",
      nodes: {
        r: dir([{ name: "a", dir: "x" }]),
        x: dir([{ name: "b", dir: "y" }]),
        y: dir([{ name: "ping", file: { ...FILE, xattrs: [["security.capability", CAP]] } }]),
      },
      layerView: true,
      ok: false,
    },
    {
      name: "a directory's own xattr",
      nodes: { r: dir([{ name: "a", dir: "x" }]), x: dir([], [["user.d", te.encode("d")]]) },
      layerView: false,
      ok: false,
    },
    {
      name: "an opaque marker in a layer view",
      nodes: { r: dir([{ name: "a", dir: "x" }]), x: dir([{ name: ".wh..wh..opq", file: FILE }]) },
      layerView: true,
      ok: false,
    },
    {
      name: "the same marker outside a layer view is a plain file",
      nodes: { r: dir([{ name: "a", dir: "x" }]), x: dir([{ name: ".wh..wh..opq", file: FILE }]) },
      layerView: false,
      ok: true,
    },
    {
      name: "a node that cannot be read",
      nodes: { r: dir([{ name: "a", dir: "gone" }]) },
      layerView: true,
      ok: false,
    },
    {
      name: "a directory entry naming a file node",
      nodes: { r: dir([{ name: "a", dir: "f" }]), f: FILE as unknown as Node },
      layerView: true,
      ok: false,
    },
  ];
  for (const c of cases) assertEquals(prove(c.nodes, c.layerView).ok, c.ok, c.name);
  // one step a node, each distinct node read once
  const shared2 = prove(cases[1].nodes, true);
  assertEquals(shared2.reads, ["r", "s"]);
  assertEquals(shared2.steps, 2);
  // past its limit of distinct Dir nodes it gives up: not proven
  const wide: Record<string, Node> = {
    r: dir(Array.from({ length: 5 }, (_, i) => ({ name: `d${i}`, dir: `s${i}` }))),
  };
  for (let i = 0; i < 5; i++) wide[`s${i}`] = dir([]);
  assertEquals(prove(wide, true, 6).ok, true);
  assertEquals(prove(wide, true, 5).ok, false);
});

testIf(
  fuseSkip() ?? skipUnless({ commands: ["getfattr"] }),
  "FUSE layer view: xattr requests end with ENOSYS once the tree is proven to hold none",
  async () => {
    using tmp = tempDir();
    const storePath = `${tmp.path}/store`;
    const store = Store.open(storePath);
    const f = ingestBytes(store, te.encode("x\n"), 0o100644);
    // a few levels of directories without any xattr or opaque marker
    let sub = putNode(store, { type: "dir", mode: 0o40755, entries: [{ name: "leaf", file: f }] });
    for (let i = 0; i < 5; i++) {
      sub = putNode(store, {
        type: "dir",
        mode: 0o40755,
        entries: [{ name: "d", dir: sub }, { name: `f${i}`, file: f }],
      });
    }
    const plain = putNode(store, {
      type: "dir",
      mode: 0o40755,
      entries: [{ name: "l", dir: sub }],
    });
    // the same, with one file's xattr at the bottom
    const deep = putNode(store, {
      type: "dir",
      mode: 0o40755,
      entries: [
        { name: "l", dir: sub },
        {
          name: "z",
          dir: putNode(store, {
            type: "dir",
            mode: 0o40755,
            entries: [{ name: "ping", file: { ...f, xattrs: [["user.n", te.encode("v")]] } }],
          }),
        },
      ],
    });
    for (const [k, v] of [["plain", plain], ["deep", deep]]) store.setRef(`test/${k}`, v);
    const until = async (file: string, want: RegExp) => {
      let last = "";
      for (let i = 0; i < 100; i++) {
        last = (await run("getfattr", ["-n", "user.nope", file])).out;
        if (want.test(last)) return last;
        await new Promise((r) => setTimeout(r, 20));
      }
      throw new Error(`getfattr never said ${want}: ${last}`);
    };
    const mnt = `${tmp.path}/mnt`;
    await withServer(storePath, plain, mnt, "layers", async () => {
      // the first request is answered from the nodes, and starts the proof
      const first = await run("getfattr", ["-n", "user.nope", `${mnt}/l/f4`]);
      assert(/No such attribute/.test(first.out), first.out);
      // proven: the kernel is told ENOSYS, and reports no support from then on
      await until(`${mnt}/l/d/d/d/d/d/leaf`, /not supported/i);
      const list = await run("getfattr", ["-d", "-m", "-", `${mnt}/l/f4`]);
      assert(/not supported/i.test(list.out) || list.out.trim() === "", list.out);
    });
    await withServer(storePath, deep, `${tmp.path}/mnt2`, "layers", async () => {
      const m = `${tmp.path}/mnt2`;
      assert(
        /No such attribute/.test((await run("getfattr", ["-n", "user.nope", `${m}/l/f4`])).out),
      );
      // long after the proof has run (it reads 8 Dir nodes), requests are still answered
      await new Promise((r) => setTimeout(r, 300));
      for (const p of [`${m}/l/f4`, `${m}/l/d/d/d/d/d/leaf`]) {
        const r = await run("getfattr", ["-n", "user.nope", p]);
        assert(/No such attribute/.test(r.out), r.out);
      }
      const one = await run("getfattr", [
        "--absolute-names",
        "--only-values",
        "-n",
        "user.n",
        `${m}/z/ping`,
      ]);
      assertEquals(one.out, "v");
    });
  },
);
