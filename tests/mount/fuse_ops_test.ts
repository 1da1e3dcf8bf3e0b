/**
 * The ops whose arguments or replies other mount tests do not reach, through a real mount: setattr
 * with owner and mtime (the request's struct stat), the caller's uid/gid on create and mkdir
 * (fuse_ctx), statfs (struct statvfs), and the directory handles of a --rw mount (opendir,
 * readdir, releasedir); and the work the serve loop does ahead of the root's first listing.
 */
import { assertEquals, assertThrows } from "../_assert.ts";
import { tempDir, testIf } from "../_helpers.ts";
import { corruptObject, fuseSkip, mountFixture, sh, withMount } from "./_util.ts";
import { EAGER_SUBDIRS, FuseOps, lazySubdirs } from "../../src/mount/ops.ts";
import { Errno, type FsError, type Inode, Projection } from "../../src/mount/projected.ts";
import { Store } from "../../src/cas/store.ts";
import { ingestTree } from "../../src/scan/ingest.ts";
import { decodeNode } from "../../src/dag/node.ts";
import { openLibfuse3 } from "../../ffi/libfuse3.ts";
import { S_IFDIR } from "../../src/sys/mode.ts";

const SKIP = fuseSkip() ??
  ((await sh("command -v setpriv")).code === 0 ? null : "needs setpriv (util-linux)");

async function ok(line: string, cwd: string): Promise<string> {
  const r = await sh(line, { cwd });
  assertEquals(r.code, 0, `${line}: ${r.stderr}`);
  return r.stdout.trim();
}

testIf(SKIP, "setattr, the caller's ids, statfs and readdir on a --rw mount", async () => {
  using tmp = tempDir();
  const { store, mnt, root } = await mountFixture(tmp.path, (src) => {
    Deno.mkdirSync(`${src}/d`, { recursive: true });
    for (let i = 0; i < 300; i++) Deno.writeTextFileSync(`${src}/d/f${i}`, `${i}`);
    Deno.writeTextFileSync(`${src}/a`, "a");
  });
  await withMount(store, root, mnt, { rw: true }, async () => {
    // setattr: owner, group, mtime (FUSE_SET_ATTR_UID|GID|MTIME) and mode, read back by stat.
    await ok("chown 1234:4321 a && touch -m -d @1600000000 a && chmod 640 a", mnt);
    assertEquals(await ok("stat -c '%u %g %Y %a' a", mnt), "1234 4321 1600000000 640");
    // The caller's uid/gid (fuse_ctx) own what it creates.
    await ok("mkdir shared && chmod 777 shared", mnt);
    const as = "setpriv --reuid=1000 --regid=2000 --clear-groups";
    await ok(`${as} sh -c 'echo x > shared/f && mkdir shared/sub'`, mnt);
    assertEquals(await ok("stat -c '%u %g' shared/f shared/sub", mnt), "1000 2000\n1000 2000");
    // statfs: 4 KiB blocks, names up to 255 bytes.
    assertEquals(await ok(`stat -f -c '%S %l' .`, mnt), "4096 255");
    // readdir through an open directory handle, across several READDIR requests.
    const names = (await ok("ls -a d", mnt)).split("\n");
    assertEquals(names.length, 302);
    assertEquals(names.slice(0, 2), [".", ".."]);
    assertEquals(new Set(names).size, 302);
  });
});

Deno.test("lazySubdirs: past EAGER_SUBDIRS unread subdirectories, readdirplus sends names only", () => {
  const root = { ino: 1, mode: S_IFDIR | 0o755, children: new Map(), lowerDir: "r" } as unknown;
  const dir = (ino: number, read: boolean) =>
    ({ ino, mode: S_IFDIR | 0o755, children: read ? new Map() : null, lowerDir: "x" }) as Inode;
  const file = (ino: number) => ({ ino, mode: 0o100644, children: null }) as Inode;
  const list = (...xs: Inode[]) => [root as Inode, root as Inode, ...xs];
  const n = EAGER_SUBDIRS;
  const table: [string, Inode[], boolean][] = [
    ["empty", list(), false],
    ["files only", list(...Array.from({ length: 500 }, (_, i) => file(i + 2))), false],
    ["exactly the limit", list(...Array.from({ length: n }, (_, i) => dir(i + 2, false))), false],
    ["one past", list(...Array.from({ length: n + 1 }, (_, i) => dir(i + 2, false))), true],
    ["many, all read", list(...Array.from({ length: 3 * n }, (_, i) => dir(i + 2, true))), false],
    ["'.' and '..' do not count", [dir(1, false), dir(1, false), ...list().slice(2)], false],
  ];
  for (const [what, l, want] of table) assertEquals(lazySubdirs(l), want, what);
});

/**
 * A store holding `dirs` subdirectories (one file each) and a file at the root: a Projection of
 * it over a fresh Store (`before` runs first, e.g. to corrupt a node), and the subdirectories' ids.
 */
function warmFixture(
  path: string,
  dirs: number,
  before: (store: Store, ids: string[]) => void = () => {},
): Projection {
  const src = `${path}/src`;
  for (let i = 0; i < dirs; i++) {
    Deno.mkdirSync(`${src}/d${i}`, { recursive: true });
    // (the temp path makes every fixture's nodes its own: decoded Dir nodes are cached by id for
    // the whole process, and another test's identical tree would be listed from that cache)
    Deno.writeTextFileSync(`${src}/d${i}/f`, `${i} ${path}`);
  }
  Deno.writeTextFileSync(`${src}/top`, "top");
  const store = Store.open(`${path}/store`, { create: true });
  const { root } = ingestTree(store, src);
  const node = decodeNode(store.getObject(root));
  before(store, node.type === "dir" ? node.entries.flatMap((e) => e.dir ? [e.dir] : []) : []);
  // a Store of its own: this one's read window still holds the bytes as they were
  return new Projection(Store.open(`${path}/store`), root, { log: () => {} });
}

function opsOver(p: Projection): FuseOps {
  return new FuseOps({
    lib: openLibfuse3(), // (warmStep replies to nothing: no session needed)
    fs: p,
    overlay: null,
    timeout: 1,
    xattrs: false,
    log: () => {},
    counts: {},
  });
}

testIf(
  fuseSkip(),
  "warmStep reads what the root's first readdirplus needs, one node a step, and then stops",
  () => {
    using tmp = tempDir();
    const p = warmFixture(tmp.path, 3);
    const ops = opsOver(p);
    let steps = 0;
    while (ops.warmStep()) steps++;
    // the root's entries, then each subdirectory's node
    assertEquals(steps, 4);
    assertEquals(p.stats.dirReads, 4);
    assertEquals(ops.warmStep(), false);
    // what was read is the tree's: the subdirectories' entries are there, nothing is read again
    for (let i = 0; i < 3; i++) {
      const d = p.lookup(1, `d${i}`);
      assertEquals([...p.children(d).keys()], ["f"]);
    }
    assertEquals(p.stats.dirReads, 4);
    assertEquals(p.stats.readErrors, 0);
  },
);

testIf(
  fuseSkip(),
  "warmStep leaves many unread subdirectories to lookups, as readdirplus does",
  () => {
    using tmp = tempDir();
    const p = warmFixture(tmp.path, EAGER_SUBDIRS + 1);
    const ops = opsOver(p);
    let steps = 0;
    while (ops.warmStep()) steps++;
    assertEquals(steps, 1); // the root's entries only
    assertEquals(p.stats.dirReads, 1);
  },
);

testIf(
  fuseSkip(),
  "warmStep stops at a node that cannot be read; the error stays the reader's",
  () => {
    using tmp = tempDir();
    const p = warmFixture(tmp.path, 2, (store, ids) => corruptObject(store, ids[0]));
    const ops = opsOver(p);
    let steps = 0;
    while (ops.warmStep()) steps++;
    assertEquals(steps, 1); // the root's entries; d0's node fails
    assertEquals(p.stats.readErrors, 1);
    const d0 = p.root.children!.get("d0")!;
    const e = assertThrows(() => p.children(d0));
    assertEquals((e as FsError).errno, Errno.EIO);
    assertEquals([...p.children(p.lookup(1, "d1")).keys()], ["f"]);
  },
);
