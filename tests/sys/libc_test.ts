import { assert, assertEquals } from "../_assert.ts";
import { skipUnless, tempDir, testIf } from "../_helpers.ts";
import { libc, LibcError } from "../../src/sys/libc.ts";
import { fileType, S_IFCHR, S_IFIFO } from "../../src/sys/mode.ts";

function errnoOf(f: () => void): number | null {
  try {
    f();
    return null;
  } catch (e) {
    assert(e instanceof LibcError, String(e));
    assert(e.message === `${e.call}: ${e.text} (errno ${e.errno})`, e.message);
    return e.errno;
  }
}

Deno.test("libc: failures carry errno and its text (nothing is mounted or changed)", () => {
  using tmp = tempDir();
  const none = `${tmp.path}/none`;
  const ENOENT = 2;
  const rows: [string, () => void, number][] = [
    ["setxattr on a missing path", () => libc().setxattr(none, "user.x", "y"), ENOENT],
    ["lchown on a missing path", () => libc().lchown(none, 0, 0), ENOENT],
    ["mknod in a missing directory", () => libc().mknod(`${none}/f`, S_IFIFO | 0o644, 0), ENOENT],
    ["mount on a missing target", () => libc().mount("none", none, "tmpfs", 0), ENOENT],
    ["umount of a missing path", () => libc().umount(none), ENOENT],
  ];
  for (const [what, f, want] of rows) assertEquals(errnoOf(f), want, what);
  assertEquals(libc().getxattr(none, "user.x"), null);
  assertEquals(libc(), libc(), "one instance");
});

Deno.test("libc: mknod makes a fifo; xattrs round-trip where the filesystem has them", () => {
  using tmp = tempDir();
  const fifo = `${tmp.path}/fifo`;
  libc().mknod(fifo, S_IFIFO | 0o644, 0);
  assertEquals(fileType(Deno.lstatSync(fifo).mode!), S_IFIFO);
  const f = `${tmp.path}/f`;
  Deno.writeTextFileSync(f, "x");
  try {
    libc().setxattr(f, "user.hd.test", "é✓");
  } catch (e) {
    console.log(`skipped the xattr half: ${(e as Error).message} (no user xattrs on ${tmp.path})`);
    return;
  }
  assertEquals(libc().getxattr(f, "user.hd.test"), "é✓");
  libc().setxattr(f, "user.hd.bytes", new Uint8Array([0, 1, 2]));
  assertEquals(libc().getxattr(f, "user.hd.bytes"), "\0\x01\x02");
  assertEquals(libc().getxattr(f, "user.hd.absent"), null);
});

testIf(skipUnless({ root: true }), "libc: a whiteout (char device 0:0) and lchown, as root", () => {
  using tmp = tempDir();
  const w = `${tmp.path}/wh`;
  libc().mknodChar(w, 0);
  const st = Deno.lstatSync(w);
  assertEquals(fileType(st.mode!), S_IFCHR);
  assertEquals(st.rdev, 0);
  Deno.symlinkSync("nowhere", `${tmp.path}/l`);
  libc().lchown(`${tmp.path}/l`, 1234, 5678); // the link itself, not its (missing) target
  const l = Deno.lstatSync(`${tmp.path}/l`);
  assertEquals([l.uid, l.gid], [1234, 5678]);
});
