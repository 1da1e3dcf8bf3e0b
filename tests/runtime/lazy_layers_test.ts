/**
 * Lazy environments: the busybox test image (two layers, a whiteout and an opaque directory)
 * served by one FUSE layer server as the overlay's lowerdirs through the real CLI, nothing
 * materialized, only the chunks read fetched, and `hd down` leaving no FUSE mount. The choice of
 * lazy or materialized (and the fallback without FUSE) is a table.
 * @module
 */
import { assert, assertEquals, assertIncludes, assertThrows } from "../_assert.ts";
import { hd, skipUnless, tempDir, testIf } from "../_helpers.ts";
import {
  busyboxLayers,
  busyboxRegistry,
  imageRegistry,
  serviceImageLayers,
} from "../sandbox/_image.ts";
import { freePort } from "../oci/_fixtures.ts";
import { decideLayers, symlinkInState } from "../../src/runtime/lazy_layers.ts";
import { findMount, requestMount } from "../../src/mount/manager.ts";
import { Store } from "../../src/cas/store.ts";

Deno.test("decideLayers: HD_LAYERS wins, default materialized, fallback without FUSE", () => {
  const ok = { ok: true };
  const no = { ok: false, why: "/dev/fuse is missing" };
  const table: [string | undefined, string | undefined, boolean, string, boolean][] = [
    // option, env, fuse ok, mode, note
    [undefined, undefined, true, "materialized", false],
    ["lazy", undefined, true, "lazy", false],
    ["materialized", undefined, true, "materialized", false],
    ["materialized", "lazy", true, "lazy", false],
    ["lazy", "materialized", true, "materialized", false],
    ["lazy", "", true, "lazy", false],
    ["lazy", undefined, false, "materialized", true],
    [undefined, "lazy", false, "materialized", true],
    ["materialized", undefined, false, "materialized", false],
  ];
  for (const [option, env, fuse, mode, note] of table) {
    const d = decideLayers({
      option: option as "lazy" | "materialized" | undefined,
      env,
      fuse: fuse ? ok : no,
    });
    assertEquals([d.mode, !!d.note], [mode, note], `${option} ${env} ${fuse}`);
    if (note) assertIncludes(d.note!, "/dev/fuse is missing");
  }
  assertThrows(() => decideLayers({ env: "yes", fuse: ok }), /HD_LAYERS/);
});

const skip = skipUnless({
  root: true,
  commands: ["runc", "unshare", "setpriv", "docker-registry", "skopeo"],
  paths: ["/bin/busybox", "/usr/bin/tini-static", "/dev/fuse"],
});

function fuseMounts(under: string): string[] {
  return Deno.readTextFileSync("/proc/self/mountinfo").split("\n")
    .filter((l) => l.includes(" - fuse") && l.split(" ")[4]?.startsWith(under));
}

/** A registry serving busybox (`ref`), the test's store path and its (made) project dir. */
async function setup(tmp: string) {
  const { reg, ref } = await busyboxRegistry(tmp);
  const dir = `${tmp}/proj`;
  Deno.mkdirSync(dir);
  return { reg, ref, store: `${tmp}/store`, dir };
}

/** Stops the registry, `hd down` in `dir`, and lazily unmounts any FUSE mount left under it. */
async function cleanUp(
  reg: { stop(): Promise<void> },
  store: string,
  dir: string,
  env?: Record<string, string>,
): Promise<void> {
  await reg.stop();
  await hd(["down"], env ? { store, cwd: dir, env } : { store, cwd: dir });
  for (const l of fuseMounts(dir)) {
    await new Deno.Command("umount", { args: ["-l", l.split(" ")[4]] }).output();
  }
}

testIf(skip, "lazy layers: whiteout, opaque dir, chunks read on demand, hd down", async () => {
  using tmp = tempDir();
  const { reg, ref, store, dir } = await setup(tmp.path);
  Deno.writeTextFileSync(
    `${dir}/hd.toml`,
    `[environment]\nname = "lazy"\nbase = "${ref}"\n\n[options]\nlayers = "lazy"\n`,
  );
  try {
    const r = await hd(["exec", "--", "cat", "/var/www/index.html"], { store, cwd: dir });
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.stdout, "hello from the image\n");
    // nothing copied out of the store
    let materialized: string[] = [];
    try {
      materialized = [...Deno.readDirSync(`${store}/layers`)].map((e) => e.name);
    } catch { /* no layers dir at all */ }
    assertEquals(materialized, [], "no layer directory was written");
    // the layer server stays for the next exec; it is an hd mount of this store
    const lm = `${dir}/.hd/sandbox/layers`;
    assertEquals(fuseMounts(lm).length, 1, "one FUSE server for the environment");
    const s = Store.open(store);
    const before = (await requestMount(s, lm, { op: "stats" })).stats as { chunkReads: number };
    // busybox (≈2 MB, many chunks) is executed, but the whiteout/opaque checks read nothing more
    const w = await hd([
      "exec",
      "--",
      "sh",
      "-c",
      "test -e /etc/gone || echo gone; ls /opt/old; cat /etc/motd",
    ], { store, cwd: dir });
    assertEquals(w.code, 0, w.stderr);
    assertEquals(w.stdout, "gone\nb\nlayer 2\n", "whiteout hides etc/gone, opaque hides opt/old/a");
    const after = (await requestMount(s, lm, { op: "stats" })).stats as { chunkReads: number };
    assert(after.chunkReads >= before.chunkReads);
    // only what was read: the image holds busybox (~2 MB) but /var/www/index.html, /etc/motd,
    // opt/old/b never need more than a handful of chunks besides the busybox binary's
    const bb = Deno.statSync("/bin/busybox").size;
    const served = (await requestMount(s, lm, { op: "stats" })).stats as { bytesServed: number };
    assert(served.bytesServed <= bb + 4096 * 8, `served ${served.bytesServed} bytes`);

    // a killed layer server leaves a stale mount: the next exec detects it and serves anew
    const old = findMount(s, lm)!;
    assert(old.pid > 1 && old.pid !== Deno.pid);
    Deno.kill(old.pid, "SIGKILL");
    while (findMount(s, lm)?.state === "live") await new Promise((r) => setTimeout(r, 20));
    assertEquals(findMount(s, lm)?.state, "stale");
    const again = await hd(["exec", "--", "cat", "/etc/motd"], { store, cwd: dir });
    assertEquals([again.code, again.stdout], [0, "layer 2\n"], again.stderr);
    const now = findMount(s, lm)!;
    assertEquals(now.state, "live");
    assert(now.pid !== old.pid, "a new server");
    assertEquals(fuseMounts(lm).length, 1, "the stale mount was removed, not stacked");

    const d = await hd(["down"], { store, cwd: dir });
    assertEquals(d.code, 0, d.stderr);
    assertEquals(fuseMounts(dir), [], "hd down leaves no FUSE mount");
  } finally {
    await cleanUp(reg, store, dir);
  }
});

testIf(
  skip,
  "lazy layers under hd up: nothing materialized, hd down stops the server",
  async () => {
    using tmp = tempDir();
    const { reg, ref, store, dir } = await setup(tmp.path);
    Deno.writeTextFileSync(
      `${dir}/hd.toml`,
      `[environment]\nname = "lazyup"\nbase = "${ref}"\n\n` +
        `[services.idle]\ncommand = "cat /etc/motd > /tmp/seen; exec sleep 600"\n`,
    );
    const env = { HD_LAYERS: "lazy" };
    try {
      const up = await hd(["up", "-d"], { store, cwd: dir, env });
      assertEquals(up.code, 0, up.stderr);
      const lm = `${dir}/.hd/sandbox/layers`;
      assertEquals(fuseMounts(lm).length, 1, "the layer server runs while the services do");
      let materialized: string[] = [];
      try {
        materialized = [...Deno.readDirSync(`${store}/layers`)].map((e) => e.name);
      } catch { /* none */ }
      assertEquals(materialized, []);
      // `hd exec` beside `hd up` reuses the same server
      const r = await hd(["exec", "--", "cat", "/etc/motd"], { store, cwd: dir, env });
      assertEquals([r.code, r.stdout], [0, "layer 2\n"], r.stderr);
      assertEquals(fuseMounts(lm).length, 1);
      const d = await hd(["down"], { store, cwd: dir, env });
      assertEquals(d.code, 0, d.stderr);
      assertEquals(fuseMounts(dir), [], "hd down leaves no FUSE mount");
      assertEquals(Deno.readTextFileSync("/proc/self/mountinfo").includes(dir), false);
    } finally {
      await cleanUp(reg, store, dir, env);
    }
  },
);

testIf(skip, "lazy layers: only the chunks a read touches are fetched", async () => {
  using tmp = tempDir();
  // an 8 MiB file of random bytes (incompressible, many chunks) in a third layer
  const big = new Uint8Array(8 << 20);
  for (let o = 0; o < big.length; o += 65536) crypto.getRandomValues(big.subarray(o, o + 65536));
  const layers = [...busyboxLayers(), [{ path: "data/", type: "dir" as const }, {
    path: "data/big",
    data: big,
  }]];
  const { reg, ref } = await imageRegistry(tmp.path, layers, "bigfile");
  const store = `${tmp.path}/store`;
  const dir = `${tmp.path}/proj`;
  Deno.mkdirSync(dir);
  Deno.writeTextFileSync(`${dir}/hd.toml`, `[environment]\nname = "big"\nbase = "${ref}"\n`);
  const env = { HD_LAYERS: "lazy" };
  try {
    const r0 = await hd(["exec", "--", "true"], { store, cwd: dir, env });
    assertEquals(r0.code, 0, r0.stderr);
    const s = Store.open(store);
    const lm = `${dir}/.hd/sandbox/layers`;
    type St = { chunkReads: number; bytesServed: number };
    const before = (await requestMount(s, lm, { op: "stats" })).stats as St;
    const r = await hd(["exec", "--", "sh", "-c", "head -c 100 /data/big | wc -c"], {
      store,
      cwd: dir,
      env,
    });
    assertEquals([r.code, r.stdout.trim()], [0, "100"], r.stderr);
    const after = (await requestMount(s, lm, { op: "stats" })).stats as St;
    const served = after.bytesServed - before.bytesServed;
    assert(after.chunkReads > before.chunkReads, "the first chunks of data/big were read");
    // the kernel reads ahead by the mount's 1 MiB window, and may already start the next one
    // (kernel 6.18 here: 1.67 MiB for this read, every time): far from the file's 8 MiB
    assert(served <= (2 << 20) + 65536, `served ${served} bytes of an 8 MiB file for 100 bytes`);
    const total = (await hd(["exec", "--", "sh", "-c", "cat /data/big | wc -c"], {
      store,
      cwd: dir,
      env,
    })).stdout.trim();
    assertEquals(total, String(8 << 20));
    const all = (await requestMount(s, lm, { op: "stats" })).stats as St;
    assert(all.bytesServed - before.bytesServed >= 8 << 20, "reading it all fetches the rest");
  } finally {
    await cleanUp(reg, store, dir, env);
  }
});

testIf(
  skip,
  "lazy layers: a build step runs, its layer is served lazily with the image's",
  async () => {
    using tmp = tempDir();
    const { reg, ref, store, dir } = await setup(tmp.path);
    Deno.writeTextFileSync(
      `${dir}/hd.toml`,
      `[environment]\nname = "lazystep"\nbase = "${ref}"\n\n[build]\n` +
        `steps = [{ run = "echo made > /opt/made && rm /etc/motd", inputs = [] }]\n`,
    );
    const env = { HD_LAYERS: "lazy" };
    try {
      const cmd =
        "cat /opt/made; test -e /etc/motd || echo no-motd; test -e /etc/gone || echo gone";
      const r = await hd(["exec", "--", "sh", "-c", cmd], { store, cwd: dir, env });
      assertEquals([r.code, r.stdout], [0, "made\nno-motd\ngone\n"], r.stderr);
      assertIncludes(r.stderr, "step 1 running");
      let materialized: string[] = [];
      try {
        materialized = [...Deno.readDirSync(`${store}/layers`)].map((e) => e.name);
      } catch { /* none */ }
      assertEquals(materialized, [], "the step ran on lazy layers too");
      assertEquals(fuseMounts(`${store}/tmp`), [], "the step's layer server is gone");
      const lm = `${dir}/.hd/sandbox/layers`;
      // three lowerdirs: the two image layers and the step's, all below the one server
      const layers = [...Deno.readDirSync(lm)].map((e) => e.name);
      assertEquals(layers.length, 3);
      const r2 = await hd(["exec", "--", "sh", "-c", cmd], { store, cwd: dir, env });
      assertEquals([r2.code, r2.stdout], [0, "made\nno-motd\ngone\n"], r2.stderr);
      assertIncludes(r2.stderr, "step 1 cached");
    } finally {
      await cleanUp(reg, store, dir, env);
    }
  },
);

testIf(
  skip,
  "lazy layers: image services on a server of their own, kept across a step re-run",
  async () => {
    using tmp = tempDir();
    const { reg, ref } = await imageRegistry(tmp.path, serviceImageLayers(), "svc", {
      Env: ["PATH=/bin"],
    });
    const dir = `${tmp.path}/proj`;
    const store = `${tmp.path}/store`;
    Deno.mkdirSync(dir);
    Deno.writeTextFileSync(`${dir}/input.txt`, "one\n");
    const port = freePort();
    // a host step and an image service: the step's re-run must not touch the image's server
    Deno.writeTextFileSync(
      `${dir}/hd.toml`,
      `[environment]\nname = "lazyimg"\n\n[options]\nlayers = "lazy"\n\n` +
        `[[build.steps]]\nrun = "cp input.txt out.txt"\ninputs = ["input.txt"]\n` +
        `outputs = ["out.txt"]\n\n` +
        `[services.web]\nimage = "${ref}"\n` +
        `command = ["httpd", "-f", "-p", "127.0.0.1:${port}", "-h", "/var/www"]\n` +
        `port = ${port}\n`,
    );
    const opts = { store, cwd: dir };
    try {
      const up = await hd(["up", "-d"], opts);
      assertEquals(up.code, 0, up.stderr);
      const lm = `${dir}/.hd/sandbox/image-layers`;
      assertEquals(fuseMounts(lm).length, 1, "the image services' layer server");
      let materialized: string[] = [];
      try {
        materialized = [...Deno.readDirSync(`${store}/layers`)].map((e) => e.name);
      } catch { /* none */ }
      assertEquals(materialized, [], "no layer directory was written");
      const get = async () => await (await fetch(`http://127.0.0.1:${port}/index.html`)).text();
      assertEquals(await get(), "hello from the image\n");
      const s = Store.open(store);
      const server = findMount(s, lm)!;
      assertEquals(server.state, "live");
      // the step re-runs; the image service keeps its root and its server
      Deno.writeTextFileSync(`${dir}/input.txt`, "two\n");
      const t0 = Date.now();
      while (Deno.readTextFileSync(`${dir}/out.txt`) !== "two\n" && Date.now() - t0 < 30_000) {
        await new Promise((r) => setTimeout(r, 50));
      }
      assertEquals(Deno.readTextFileSync(`${dir}/out.txt`), "two\n");
      assertEquals(findMount(s, lm)?.pid, server.pid, "the same layer server");
      assertEquals(await get(), "hello from the image\n");
      const d = await hd(["down"], opts);
      assertEquals(d.code, 0, d.stderr);
      assertEquals(fuseMounts(dir), [], "hd down leaves no FUSE mount");
      assertEquals(Deno.readTextFileSync("/proc/self/mountinfo").includes(dir), false);
    } finally {
      await cleanUp(reg, store, dir);
    }
  },
);

testIf(skip, "lazy layers: two steps that leave the same layer are one lowerdir", async () => {
  using tmp = tempDir();
  const { reg, ref, store, dir } = await setup(tmp.path);
  // both steps write only below /tmp (the sandbox's own tmpfs): their layers are the same tree,
  // and overlayfs refuses a lowerdir given twice (ELOOP) — the later step mounts both below it
  Deno.writeTextFileSync(
    `${dir}/hd.toml`,
    `[environment]\nname = "lazydup"\nbase = "${ref}"\n\n[options]\nlayers = "lazy"\n\n` +
      `[build]\nsteps = [\n  { run = "touch /tmp/a", inputs = [] },\n` +
      `  { run = "touch /tmp/b", inputs = [] },\n` +
      `  { run = "echo built > /opt/x", inputs = [] },\n]\n`,
  );
  try {
    const r = await hd(["exec", "--", "cat", "/opt/x"], { store, cwd: dir });
    assertEquals([r.code, r.stdout], [0, "built\n"], r.stderr);
  } finally {
    await cleanUp(reg, store, dir);
  }
});

Deno.test("symlinkInState: a link from .hd down is found; the project's own path may hold links", () => {
  using tmp = tempDir();
  const real = `${tmp.path}/real`;
  Deno.mkdirSync(`${real}/proj/.hd/sandbox`, { recursive: true });
  Deno.symlinkSync(real, `${tmp.path}/via`); // a link above the project: the user's own layout
  assertEquals(symlinkInState(`${tmp.path}/via/proj/.hd/sandbox/layers`), null);
  Deno.mkdirSync(`${tmp.path}/elsewhere`);
  Deno.mkdirSync(`${real}/p2/.hd`, { recursive: true });
  Deno.symlinkSync(`${tmp.path}/elsewhere`, `${real}/p2/.hd/sandbox`);
  assertEquals(symlinkInState(`${real}/p2/.hd/sandbox/layers`), `${real}/p2/.hd/sandbox`);
  assertEquals(symlinkInState(`${tmp.path}/store/tmp/build-x/layers`), null);
});

for (const mode of ["lazy", "materialized"]) {
  testIf(
    skip,
    `${mode} layers: a project that ships .hd/sandbox as a symlink is refused`,
    async () => {
      using tmp = tempDir();
      const { reg, ref, store, dir } = await setup(tmp.path);
      const outside = `${tmp.path}/outside`;
      Deno.mkdirSync(outside);
      Deno.mkdirSync(`${dir}/.hd`);
      Deno.symlinkSync(outside, `${dir}/.hd/sandbox`);
      Deno.writeTextFileSync(
        `${dir}/hd.toml`,
        `[environment]\nname = "shipped"\nbase = "${ref}"\n\n[options]\nlayers = "${mode}"\n`,
      );
      try {
        const r = await hd(["exec", "--", "true"], { store, cwd: dir });
        assert(r.code !== 0, "refused");
        assertIncludes(r.stderr, ".hd/sandbox is a symlink");
        assertEquals([...Deno.readDirSync(outside)], [], "nothing created through the link");
        assert(
          !Deno.readTextFileSync("/proc/self/mountinfo").includes(tmp.path),
          "nothing mounted",
        );
      } finally {
        await reg.stop();
      }
    },
  );
}
