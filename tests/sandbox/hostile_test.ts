/**
 * Hostile images and configs cannot make hd write on the host: an image whose `etc` and `app` are
 * symlinks to host directories (a temp dir of this test), under overlayfs and under the hardlink
 * fallback, with a build step and `hd exec`; and a `workdir` climbing out with `..`. The targeted
 * host directories must stay empty.
 * @module
 */
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { hd, skipUnless, tempDir, testIf } from "../_helpers.ts";
import { APPLETS } from "./_image.ts";
import { imageRegistry } from "./_image.ts";
import type { TarSpec } from "../oci/_fixtures.ts";
import { releaseEnvMount } from "../../src/runtime/sandbox_steps.ts";
import { loadSpec } from "../../src/config/parse.ts";

const skip = skipUnless({
  root: true,
  commands: ["runc", "unshare", "setpriv", "docker-registry", "skopeo"],
  paths: ["/bin/busybox", "/usr/bin/tini-static"],
});

/**
 * A busybox image whose etc/ is an absolute symlink to `victim`/etc, and whose app/ climbs to
 * `victim`/app from where hd puts roots (`<store>/tmp/build-…/root`, `<project>/.hd/sandbox/root`:
 * both four levels below the test's temp dir, where `victim` is).
 */
function hostileLayers(victim: string): TarSpec[][] {
  const bb = Deno.readFileSync("/bin/busybox");
  return [[
    { path: "bin/", type: "dir" },
    { path: "bin/busybox", data: bb, mode: 0o755 },
    ...APPLETS.map((a): TarSpec => ({ path: `bin/${a}`, type: "symlink", link: "busybox" })),
    { path: "root/", type: "dir", mode: 0o700 },
    { path: "etc", type: "symlink", link: `${victim}/etc` },
    {
      path: "app",
      type: "symlink",
      link: `../../../../${victim.slice(victim.lastIndexOf("/") + 1)}/app`,
    },
    { path: "up", type: "symlink", link: "../../../../../../../../.." },
  ]];
}

function listing(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string) => {
    for (const e of Deno.readDirSync(d)) {
      out.push(`${rel}${e.name}`);
      if (e.isDirectory) walk(`${d}/${e.name}`, `${rel}${e.name}/`);
    }
  };
  walk(dir, "");
  return out.sort();
}

testIf(skip, "an image's symlinked etc/ and app/ lead nowhere outside its root", async () => {
  using tmp = tempDir();
  const victim = `${tmp.path}/victim`;
  Deno.mkdirSync(`${victim}/etc`, { recursive: true });
  Deno.mkdirSync(`${victim}/app`);
  const { reg, ref } = await imageRegistry(tmp.path, hostileLayers(victim), "hostile");
  try {
    for (const mode of ["overlay", "hardlink"]) {
      const store = `${tmp.path}/store-${mode}`;
      const dir = `${tmp.path}/proj-${mode}`;
      Deno.mkdirSync(`${dir}/src`, { recursive: true });
      Deno.writeTextFileSync(`${dir}/src/a.txt`, "project file\n");
      Deno.writeTextFileSync(
        `${dir}/hd.toml`,
        `[environment]
name = "hostile"
base = "${ref}"

[build]
steps = [{ run = "mkdir -p out && cat src/a.txt > out/copy && ls /etc > out/etc.txt", inputs = ["src"], outputs = ["out"] }]
cache = ["/etc/cachedir", "/up/cache2"]
`,
      );
      const env: Record<string, string> = mode === "hardlink" ? { HD_ROOTFS: "hardlink" } : {};
      try {
        const r = await hd([
          "exec",
          "sh",
          "-c",
          "cat /app/out/copy; pwd; cat /etc/resolv.conf >/dev/null && echo resolv",
        ], {
          store,
          cwd: dir,
          env,
        });
        assertEquals(r.code, 0, `${mode}: ${r.stderr}`);
        // under overlayfs the step's /app is the real directory its layer provides; a farm keeps
        // the image's symlink (the step wrote where it leads, inside the root)
        if (mode === "overlay") assertIncludes(r.stdout, "project file\n");
        assertIncludes(r.stdout, "resolv\n");
        assertEquals(
          listing(victim),
          ["app", "etc"],
          `${mode}: nothing written into the host dirs`,
        );
      } finally {
        releaseEnvMount(loadSpec(`${dir}/hd.toml`));
      }
    }
  } finally {
    await reg.stop();
  }
});

testIf(skip, "a workdir climbing out with .. is refused before anything is created", async () => {
  using tmp = tempDir();
  const victim = `${tmp.path}/victim`;
  Deno.mkdirSync(victim);
  const { reg, ref } = await imageRegistry(tmp.path, hostileLayers(victim), "hostile");
  const store = `${tmp.path}/store`;
  const dir = `${tmp.path}/proj`;
  Deno.mkdirSync(dir);
  const depth = "/..".repeat(12);
  try {
    for (const wd of [`${depth}${victim}/wd`, "sub/../../.."]) {
      Deno.writeTextFileSync(
        `${dir}/hd.toml`,
        `[environment]
name = "hostile"
base = "${ref}"
workdir = "${wd}"

[build]
steps = [{ run = "echo hi > made", inputs = [] }]
`,
      );
      const r = await hd(["exec", "true"], { store, cwd: dir });
      assert(r.code !== 0, `refused: ${wd}`);
      assertIncludes(r.stderr, "workdir");
      assert(!r.stderr.includes("looks like a bug"), r.stderr);
      assertEquals(listing(victim), [], "nothing created on the host");
    }
  } finally {
    await reg.stop();
  }
});
