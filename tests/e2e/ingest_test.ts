/**
 * `hd ingest` end to end: a naive-order Node project (its Dockerfile copies the whole tree before
 * `npm ci`) on a local Debian image with Node (tests/sandbox/_debian.ts, pushed to a
 * docker-registry on 127.0.0.1) is translated by `hd ingest` and run by `hd up -d`. Editing a
 * source file restarts the service without re-running `npm ci`; editing package-lock.json re-runs
 * it. npm runs offline: the project's .npmrc says so, and the npm rule keys the step by it too.
 * @module
 */
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { hd, skipUnless, tempDir, testIf } from "../_helpers.ts";
import { getWanted } from "./_http.ts";
import { freePort, startRegistry } from "../oci/_fixtures.ts";
import { debianRootfs, pushRootfs } from "../sandbox/_debian.ts";

const skip = skipUnless({
  root: true,
  commands: ["runc", "unshare", "setpriv", "docker-registry", "skopeo", "setsid", "debootstrap"],
  paths: ["/usr/bin/tini-static"],
}) ?? (Deno.env.get("HD_SKIP_DEBIAN") ? "HD_SKIP_DEBIAN is set" : null);

const get = (url: string, want?: (s: string) => boolean, ms = 30_000) =>
  getWanted(url, want, ms, 25);

const count = (s: string, part: string) => s.split(part).length - 1;

testIf(
  skip,
  "hd ingest → hd up: a naive Dockerfile's npm ci runs only when the lockfile changes",
  async () => {
    const img = await debianRootfs();
    if ("skip" in img) {
      console.log(`SKIP ingest e2e: ${img.skip}`);
      return;
    }
    using tmp = tempDir("hd-ingest-e2e-");
    const reg = await startRegistry(tmp.path);
    const store = `${tmp.path}/store`;
    const dir = `${tmp.path}/naive`;
    const port = freePort();
    try {
      const ref = `${reg.host}/hd-node:bookworm`;
      await pushRootfs(img.rootfs, tmp.path, ref);
      Deno.mkdirSync(dir);
      const w = (f: string, s: string) => Deno.writeTextFileSync(`${dir}/${f}`, s);
      w(
        "Dockerfile",
        `FROM ${ref}\nWORKDIR /app\nCOPY . .\nRUN npm ci\nCMD ["node", "server.js"]\nEXPOSE ${port}\n`,
      );
      w("package.json", JSON.stringify({ name: "naive", version: "1.0.0", private: true }) + "\n");
      w(
        "package-lock.json",
        JSON.stringify({
          name: "naive",
          version: "1.0.0",
          lockfileVersion: 3,
          requires: true,
          packages: { "": { name: "naive", version: "1.0.0" } },
        }) + "\n",
      );
      w(".npmrc", "offline=true\naudit=false\nfund=false\nupdate-notifier=false\n");
      w("message.js", 'module.exports = "v1";\n');
      w(
        "server.js",
        `const http = require("http");\n` +
          `http.createServer((q, s) => s.end(require("./message.js") + "\\n"))` +
          `.listen(${port}, "127.0.0.1");\n`,
      );
      w(".dockerignore", "node_modules\n*.log\n");

      const ing = await hd(["ingest"], { cwd: dir, store });
      assertEquals(ing.code, 0, ing.stderr + ing.stdout);
      assertIncludes(ing.stdout, "wrote hd.toml from Dockerfile (1 build step, 1 service)");
      const toml = Deno.readTextFileSync(`${dir}/hd.toml`);
      assertIncludes(
        toml,
        `{ run = "npm ci", inputs = ["package.json", "package-lock.json", ".npmrc"], outputs = ["node_modules"] }`,
      );
      assertIncludes(toml, `command = "node server.js"`);
      // fast reacting in the test
      Deno.writeTextFileSync(`${dir}/hd.toml`, toml + '\n[options]\ndebounce = "10ms"\n');

      const up = await hd(["up", "-d"], { store, cwd: dir });
      assertEquals(up.code, 0, up.stderr + up.stdout);
      const url = `http://127.0.0.1:${port}/`;
      assertEquals(await get(url), "v1\n");
      const log = () => Deno.readTextFileSync(`${dir}/.hd/logs/hd.log`);
      assertEquals(count(log(), "step 1 running"), 1, log());

      // a source edit: the service restarts, npm ci does not run again
      const t0 = performance.now();
      w("message.js", 'module.exports = "v2";\n');
      assertEquals(await get(url, (s) => s === "v2\n"), "v2\n");
      const editMs = performance.now() - t0;
      assertEquals(count(log(), "step 1 running"), 1, "npm ci did not run again:\n" + log());

      // a lockfile edit: npm ci runs again, then the service answers from the new root
      const t1 = performance.now();
      w(
        "package-lock.json",
        Deno.readTextFileSync(`${dir}/package-lock.json`).replace('"1.0.0"', '"1.0.1"'),
      );
      w("message.js", 'module.exports = "v3";\n');
      assertEquals(await get(url, (s) => s === "v3\n", 60_000), "v3\n");
      const t2 = Date.now();
      while (count(log(), "step 1 running") < 2 && Date.now() - t2 < 30_000) {
        await new Promise((r) => setTimeout(r, 50));
      }
      assertEquals(count(log(), "step 1 running"), 2, "npm ci ran again:\n" + log());
      const lockMs = performance.now() - t1;
      console.log(
        `ingest e2e: edit src → answer ${editMs.toFixed(0)} ms; edit lockfile → npm ci → answer ${
          lockMs.toFixed(0)
        } ms`,
      );
      assert(!log().includes("step 1 failed"), log());
    } finally {
      await hd(["down"], { store, cwd: dir });
      await reg.stop();
      await new Deno.Command("sh", {
        args: ["-c", `umount -l "${dir}/.hd/sandbox/root" 2>/dev/null; true`],
      }).output();
    }
  },
);
