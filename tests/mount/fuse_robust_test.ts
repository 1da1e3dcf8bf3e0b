/**
 * Robustness: recovery of a stale mount left by a killed server, unmount while a reader's cwd is
 * inside, many concurrent readers (find, parallel cat, cp -r) getting the right bytes, and the
 * clear error when /dev/fuse is missing.
 */
import { assert, assertEquals } from "../_assert.ts";
import { hasCommand, hd, tempDir, testIf } from "../_helpers.ts";
import { Store } from "../../src/cas/store.ts";
import { findMount, forceUnmount, mountsAt } from "../../src/mount/manager.ts";
import { addTree, fuseSkip, hdOk, randomBytes, sh, withMount } from "./_util.ts";

const SKIP = fuseSkip();

function makeTree(src: string, dirs: number, files: number): void {
  for (let d = 0; d < dirs; d++) {
    Deno.mkdirSync(`${src}/pkg${d}/lib`, { recursive: true });
    for (let f = 0; f < files; f++) {
      const size = (d * 131 + f * 977) % 40000;
      Deno.writeFileSync(`${src}/pkg${d}/lib/m${f}.js`, randomBytes(size, d * 1000 + f + 1));
    }
    Deno.writeTextFileSync(`${src}/pkg${d}/package.json`, `{"name":"pkg${d}"}\n`);
  }
}

testIf(SKIP, "a killed server leaves a stale mount that the next hd mount recovers", async () => {
  using tmp = tempDir();
  const src = `${tmp.path}/src`;
  const store = `${tmp.path}/store`;
  const mnt = `${tmp.path}/mnt`;
  makeTree(src, 2, 3);
  Deno.mkdirSync(mnt);
  const root = await addTree(src, store);
  const st = Store.open(store, { create: false });
  try {
    await killedServer(st, store, root, mnt);
  } finally {
    forceUnmount(Deno.realPathSync(tmp.path) + "/mnt");
  }
});

async function killedServer(st: Store, store: string, root: string, mnt: string) {
  await hdOk(["mount", root, mnt], store);
  const rec = findMount(st, mnt)!;
  assertEquals(rec.state, "live");
  Deno.kill(rec.pid, "SIGKILL");
  for (let i = 0; i < 100 && findMount(st, mnt)?.state === "live"; i++) {
    await new Promise((r) => setTimeout(r, 20));
  }
  assertEquals(findMount(st, mnt)!.state, "stale");
  const r = await sh(`ls ${mnt}`);
  assert(/not connected|connection abort/.test(r.stderr), r.stderr);
  // Mounting again on the stale directory recovers it (no stacked mounts).
  await withMount(store, root, mnt, {}, async () => {
    assertEquals(mountsAt(findMount(st, mnt)!.dir).length, 1);
    assertEquals(Deno.readTextFileSync(`${mnt}/pkg1/package.json`), `{"name":"pkg1"}\n`);
    assertEquals((await hd(["mount", "--json"], { store })).code, 0);
  });
  assertEquals(mountsAt(findMount(st, mnt)?.dir ?? mnt).length, 0);
  // hd unmount also cleans a stale mount.
  await hdOk(["mount", root, mnt], store);
  Deno.kill(findMount(st, mnt)!.pid, "SIGKILL");
  await new Promise((r) => setTimeout(r, 200));
  await hdOk(["unmount", mnt], store);
  assertEquals((await sh(`ls ${mnt}`)).code, 0);
}

testIf(SKIP, "unmount does not hang while a reader's cwd is inside the mount", async () => {
  using tmp = tempDir();
  const src = `${tmp.path}/src`;
  const store = `${tmp.path}/store`;
  const mnt = `${tmp.path}/mnt`;
  makeTree(src, 1, 2);
  Deno.mkdirSync(mnt);
  const root = await addTree(src, store);
  await hdOk(["mount", root, mnt], store);
  const reader = new Deno.Command("sh", {
    args: ["-c", "cat package.json >/dev/null; sleep 30"],
    cwd: `${mnt}/pkg0`,
    stdout: "null",
    stderr: "null",
  }).spawn();
  await new Promise((r) => setTimeout(r, 300));
  const t0 = performance.now();
  await hdOk(["unmount", mnt], store);
  const ms = performance.now() - t0;
  assert(ms < 15000, `unmount took ${ms} ms`);
  assertEquals(mountsAt(Deno.realPathSync(mnt)).length, 0);
  reader.kill("SIGKILL");
  await reader.status;
});

testIf(
  SKIP,
  "many concurrent readers (find, parallel cat, cp -r) get the right bytes",
  async () => {
    using tmp = tempDir();
    const src = `${tmp.path}/src`;
    const store = `${tmp.path}/store`;
    const mnt = `${tmp.path}/mnt`;
    makeTree(src, 30, 20);
    const root = await addTree(src, store);
    const sums = async (dir: string) =>
      (await sh(`cd ${dir} && find . -type f | sort | xargs b3sum`)).stdout;
    const want = await sums(src);
    await withMount(store, root, mnt, {}, async () => {
      const jobs = [
        sh(`find ${mnt} | wc -l`),
        sh(`cd ${mnt} && find . -type f | xargs -P 8 -n 20 cat | wc -c`),
        sh(`cd ${mnt} && find . -type f | sort | xargs -P 4 -n 50 b3sum | sort -k2`),
        sh(`cp -r ${mnt} ${tmp.path}/copy`),
        sh(`cd ${mnt} && find . -type f | sort -r | xargs -P 4 -n 30 cat | wc -c`),
      ];
      const [find, cat, b3, cp, cat2] = await Promise.all(jobs);
      assertEquals(find.stdout.trim(), String(1 + 30 * 3 + 30 * 20));
      const total = (await sh(`cat $(find ${src} -type f) | wc -c`)).stdout.trim();
      assertEquals(cat.stdout.trim(), total);
      assertEquals(cat2.stdout.trim(), total);
      const sorted = (s: string) => s.trim().split("\n").sort().join("\n");
      assertEquals(sorted(b3.stdout), sorted(want));
      assertEquals(cp.code, 0, cp.stderr);
    });
    assertEquals(await sums(`${tmp.path}/copy`), want);
  },
);

testIf(
  SKIP ?? (hasCommand("unshare") ? null : "needs unshare"),
  "without /dev/fuse, hd mount fails with one clear error naming the package",
  async () => {
    using tmp = tempDir();
    const store = `${tmp.path}/store`;
    const src = `${tmp.path}/src`;
    Deno.mkdirSync(src);
    Deno.writeTextFileSync(`${src}/f`, "f");
    Deno.mkdirSync(`${tmp.path}/mnt`);
    const root = await addTree(src, store);
    // A private mount namespace whose /dev lacks fuse.
    const line = `mount -t tmpfs none /dev && exec "${Deno.execPath()}" run -A --quiet ` +
      `${new URL("../../cli.ts", import.meta.url).pathname} mount ${root} ${tmp.path}/mnt`;
    const r = await new Deno.Command("unshare", {
      args: ["-m", "sh", "-c", line],
      env: { HD_HOME: store, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(r.stderr);
    assertEquals(r.code, 1, err);
    assert(/Cannot mount: \/dev\/fuse is missing/.test(err) && /fuse3/.test(err), err);
    assertEquals(err.trim().split("\n").length, 2, err);
  },
);
