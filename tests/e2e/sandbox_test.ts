/**
 * `hd up` of a sandboxed environment from a clean store: the base image is pulled from a real
 * docker-registry on 127.0.0.1, its layers materialized, a build step runs in the sandbox (its
 * output a CAS layer), the service (busybox httpd in the namespaces) answers on loopback, an edit
 * of the step's input reruns it and restarts the service in the new root, and a second `hd up`
 * hits the step cache. The example app (Express in a Debian image) follows when debootstrap can
 * build its base image.
 * @module
 */
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { hd, REPO, skipUnless, tempDir, testIf } from "../_helpers.ts";
import { getWanted } from "./_http.ts";
import { freePort, run, startRegistry } from "../oci/_fixtures.ts";
import { busyboxRegistry } from "../sandbox/_image.ts";
import { debianRootfs, pushRootfs } from "../sandbox/_debian.ts";
import { isMountPoint } from "../../src/sandbox/rootfs.ts";
import { exists } from "../../src/sys/fs.ts";

const skip = skipUnless({
  root: true,
  commands: ["runc", "unshare", "setpriv", "docker-registry", "skopeo", "setsid"],
  paths: ["/bin/busybox", "/usr/bin/tini-static"],
});

const get = (url: string, want?: (s: string) => boolean, ms = 20_000) => getWanted(url, want, ms);

testIf(
  skip,
  "hd up -d: pull, sandboxed step, service on loopback, rerun on edit, cache hit",
  async () => {
    using tmp = tempDir();
    const { reg, ref } = await busyboxRegistry(tmp.path);
    const store = `${tmp.path}/store`;
    const dir = `${tmp.path}/proj`;
    Deno.mkdirSync(`${dir}/site`, { recursive: true });
    Deno.writeTextFileSync(`${dir}/site/index.html`, "v1\n");
    const port = freePort();
    Deno.writeTextFileSync(
      `${dir}/hd.toml`,
      `[environment]
name = "e2e-sbx"
base = "${ref}"

[build]
steps = [{ run = "mkdir -p gen && cat site/index.html > gen/copy && cat /proc/sys/kernel/random/uuid > gen/stamp", inputs = ["site"], outputs = ["gen"] }]

[services.web]
command = "httpd -f -p 127.0.0.1:${port} -h /app"
watch = ["site/**"]
port = ${port}
healthcheck = { test = ["CMD-SHELL", "cat /app/site/index.html"], interval = "1s" }

[options]
debounce = "10ms"
`,
    );
    const base = `http://127.0.0.1:${port}`;
    try {
      const up = await hd(["up", "-d"], { store, cwd: dir });
      assertEquals(up.code, 0, up.stderr + up.stdout);
      // ready: the container's httpd (a descendant of runc, in its own pid namespace) listens
      assert(/web\s+running.*\bready\b/.test(up.stdout), up.stdout);
      // the healthcheck ran inside the container (/app exists only in its root)
      assert(/ready\s+healthy: v1\b/.test(up.stdout), up.stdout);
      // hd exec SERVICE runs inside the running container (its root, its namespaces, its cwd)
      const inSvc = await hd([
        "exec",
        "web",
        "sh",
        "-c",
        'cat site/index.html; echo "$PWD"; exit 3',
      ], {
        store,
        cwd: dir,
      });
      assertEquals([inSvc.code, inSvc.stdout], [3, "v1\n/app\n"], inSvc.stderr);
      await reg.stop(); // everything needed is in the store now
      assertEquals(await get(`${base}/site/index.html`), "v1\n");
      assertEquals(await get(`${base}/gen/copy`), "v1\n");
      const stamp1 = await get(`${base}/gen/stamp`);
      // the service runs in its own pid namespace, on the image's root
      const log = Deno.readTextFileSync(`${dir}/.hd/logs/hd.log`);
      assertIncludes(log, "step 1 running");

      Deno.writeTextFileSync(`${dir}/site/index.html`, "v2\n");
      assertEquals(await get(`${base}/gen/copy`, (s) => s === "v2\n"), "v2\n");
      const stamp2 = await get(`${base}/gen/stamp`);
      assert(stamp2 !== stamp1, "the step ran again");

      assertEquals((await hd(["down"], { store, cwd: dir })).code, 0);
      const up2 = await hd(["up", "-d"], { store, cwd: dir });
      assertEquals(up2.code, 0, up2.stderr);
      assertEquals(await get(`${base}/gen/stamp`), stamp2, "second hd up: step cached");
      const log2 = Deno.readTextFileSync(`${dir}/.hd/logs/hd.log`);
      assertIncludes(log2, "step 1 cached");
      // hd exec next to hd up keeps the root mounted (the service runs in it)
      assertEquals((await hd(["exec", "true"], { store, cwd: dir })).code, 0);
      assert(isMountPoint(`${dir}/.hd/sandbox/root`), "mounted while hd up runs");
      assertEquals((await hd(["down"], { store, cwd: dir })).code, 0);
      // hd down unmounts the root and leaves no runc state: the project can be deleted
      assert(!isMountPoint(`${dir}/.hd/sandbox/root`), "unmounted by hd down");
      assertEquals([...Deno.readDirSync(`${dir}/.hd/sandbox/run/runc`)], []);
      const ex = await hd(["exec", "cat", "/app/gen/copy"], { store, cwd: dir });
      assertEquals(ex.stdout, "v2\n", ex.stderr);
      assert(
        !isMountPoint(`${dir}/.hd/sandbox/root`),
        "a finished hd exec unmounts what it mounted",
      );
      Deno.removeSync(dir, { recursive: true });
    } finally {
      if (exists(dir)) await hd(["down"], { store, cwd: dir });
      await reg.stop().catch(() => {});
      await new Deno.Command("sh", {
        args: ["-c", `umount -l "${dir}/.hd/sandbox/root" 2>/dev/null; true`],
      }).output();
    }
  },
);

const debian = Deno.env.get("HD_SKIP_DEBIAN") ? { skip: "HD_SKIP_DEBIAN is set" } : null;

testIf(
  skip ?? (debian?.skip ?? null),
  "examples/node-app: Express in a Debian image, npm ci layer, edit → new answer",
  async () => {
    const img = await debianRootfs();
    if ("skip" in img) {
      console.log(`SKIP node-app: ${img.skip}`);
      return;
    }
    using tmp = tempDir();
    const reg = await startRegistry(tmp.path);
    const store = `${tmp.path}/store`;
    const dir = `${tmp.path}/node-app`;
    try {
      const ref = `${reg.host}/hd-node:bookworm`;
      await pushRootfs(img.rootfs, tmp.path, ref);
      await run("cp", ["-r", `${REPO}/examples/node-app`, dir]);
      const port = freePort();
      const toml = Deno.readTextFileSync(`${dir}/hd.toml`)
        .replace("127.0.0.1:5000/hd-node:bookworm", ref)
        .replaceAll("3000", String(port));
      Deno.writeTextFileSync(`${dir}/hd.toml`, toml);
      const up = await hd(["up", "-d"], { store, cwd: dir });
      assertEquals(up.code, 0, up.stderr + up.stdout);
      const url = `http://127.0.0.1:${port}`;
      assertEquals(await get(url), "** hello from the sandbox **\n");
      const who = JSON.parse(await get(`${url}/whoami`));
      assertEquals(who.cwd, "/app");
      assertEquals(who.hostname, "node-app");
      assertIncludes(await get(`${url}/static/index.html`), "built 2");
      Deno.writeTextFileSync(`${dir}/src/message.js`, 'module.exports = "edited";\n');
      assertEquals(await get(url, (s) => s.includes("edited")), "** edited **\n");
      // node_modules lives in the npm ci layer, not in the project
      const nm = (() => {
        try {
          return [...Deno.readDirSync(`${dir}/node_modules`)].length;
        } catch {
          return 0;
        }
      })();
      assertEquals(nm, 0);
    } finally {
      await hd(["down"], { store, cwd: dir });
      await reg.stop();
      await new Deno.Command("sh", {
        args: ["-c", `umount -l "${dir}/.hd/sandbox/root" 2>/dev/null; true`],
      }).output();
    }
  },
);
