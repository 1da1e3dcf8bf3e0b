/**
 * The FUSE projection answers getxattr/listxattr from the stored nodes when asked to
 * (`FuseOptions.xattrs`), read-only, with ENODATA for a missing name; by default it keeps
 * answering ENOSYS (the kernel then stops asking), as before.
 */
import { assert, assertEquals } from "../_assert.ts";
import { REPO, skipUnless, tempDir, testIf } from "../_helpers.ts";
import { Store } from "../../src/cas/store.ts";
import { putNode } from "../../src/dag/dag.ts";
import { ingestBytes } from "../../src/scan/ingest.ts";
import { fuseSkip } from "./_util.ts";

const te = new TextEncoder();
const CAP = new Uint8Array([1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);

/** Mounts `root` in a child process (so a stuck mount cannot hang the test runner). */
async function withServer(
  store: string,
  root: string,
  mnt: string,
  xattrs: boolean,
  fn: () => Promise<void>,
): Promise<void> {
  const code = `
    import { Store } from "${REPO}/src/cas/store.ts";
    import { Projection } from "${REPO}/src/mount/projected.ts";
    import { FuseServer } from "${REPO}/src/mount/fuse.ts";
    const fs = new Projection(Store.open(${JSON.stringify(store)}, { create: false }),
      ${JSON.stringify(root)});
    const srv = new FuseServer(fs, null, { mountpoint: ${JSON.stringify(mnt)},
      xattrs: ${xattrs}, log: () => {} });
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
