/**
 * A two-stage Dockerfile end to end: `hd ingest` turns the stage the final one copies from into
 * build steps on that stage's image (`stage`, `image`) and the `COPY --from` into a copy step;
 * `hd up -d` runs them on a local busybox image (pushed to a docker-registry on 127.0.0.1). The
 * environment has the copied file; editing the build stage's input re-runs that stage and the
 * copy; an edit of the final stage re-runs only its own step.
 * @module
 */
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { hd, skipUnless, tempDir, testIf } from "../_helpers.ts";
import { getWanted } from "./_http.ts";
import { freePort } from "../oci/_fixtures.ts";
import { busyboxRegistry } from "../sandbox/_image.ts";

const skip = skipUnless({
  root: true,
  commands: ["runc", "unshare", "setpriv", "docker-registry", "skopeo", "setsid"],
  paths: ["/bin/busybox", "/usr/bin/tini-static"],
});

const get = (url: string, want?: (s: string) => boolean, ms = 30_000) => getWanted(url, want, ms);

const count = (s: string, part: string) => s.split(part).length - 1;

async function until(what: string, ok: () => boolean, ms = 30_000): Promise<void> {
  const t0 = Date.now();
  while (!ok()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

testIf(
  skip,
  "hd ingest → hd up: a build stage's output copied into the environment; edits re-run only their stage",
  async () => {
    using tmp = tempDir("hd-stages-e2e-");
    const { reg, ref } = await busyboxRegistry(tmp.path);
    const store = `${tmp.path}/store`;
    const dir = `${tmp.path}/proj`;
    Deno.mkdirSync(dir);
    const port = freePort();
    const w = (f: string, s: string) => Deno.writeTextFileSync(`${dir}/${f}`, s);
    const dockerfile = (final: string) =>
      `FROM ${ref} AS build\nWORKDIR /app\nCOPY msg.txt ./\n` +
      `RUN mkdir -p /out && cat msg.txt > /out/app.txt && echo built >> /out/app.txt\n\n` +
      `FROM ${ref}\nWORKDIR /app\nRUN echo ${final} > /etc/final.txt\n` +
      `COPY --from=build /out/app.txt /app/app.txt\n` +
      `CMD ["httpd", "-f", "-p", "127.0.0.1:${port}", "-h", "/app"]\nEXPOSE ${port}\n`;
    const ingest = async () => {
      const r = await hd(["ingest", "--force"], { cwd: dir, store });
      assertEquals(r.code, 0, r.stderr + r.stdout);
      const toml = Deno.readTextFileSync(`${dir}/hd.toml`);
      w("hd.toml", toml + '\n[options]\ndebounce = "10ms"\n');
      return toml;
    };
    w("msg.txt", "v1\n");
    w("Dockerfile", dockerfile("final-1"));
    const log = () => Deno.readTextFileSync(`${dir}/.hd/logs/hd.log`);
    try {
      const toml = await ingest();
      assertIncludes(toml, `{ run = "echo final-1 > /etc/final.txt", inputs = [] }`);
      assertIncludes(toml, `inputs = ["msg.txt"], stage = "build", image = "${ref}" }`);
      assertIncludes(
        toml,
        `{ copy = [{ from = "build", src = "/out/app.txt", dst = "/app/app.txt" }] }`,
      );

      const up = await hd(["up", "-d"], { store, cwd: dir });
      assertEquals(up.code, 0, up.stderr + up.stdout);
      const url = `http://127.0.0.1:${port}/app.txt`;
      assertEquals(await get(url), "v1\nbuilt\n");
      // the stage's layer is not in the environment: /out is only in the build stage's root
      const ex = await hd(["exec", "sh", "-c", "cat /etc/final.txt; ls /out 2>&1 || true"], {
        store,
        cwd: dir,
      });
      assertEquals(ex.stdout.split("\n")[0], "final-1", ex.stderr);
      assert(!ex.stdout.includes("app.txt"), ex.stdout);
      for (const n of [1, 2, 3]) assertEquals(count(log(), `step ${n} running`), 1, log());

      // the build stage's input: that stage and the copy run again; the final stage's step not
      w("msg.txt", "v2\n");
      assertEquals(await get(url, (s) => s === "v2\nbuilt\n"), "v2\nbuilt\n");
      await until("the copy", () => count(log(), "step 3 running") === 2);
      assertEquals(count(log(), "step 2 running"), 2, log());
      assertEquals(count(log(), "step 1 running"), 1, log());

      // an edit of the final stage: only its step runs; the build stage and the copy are cached
      w("Dockerfile", dockerfile("final-2"));
      await ingest();
      await until("the final stage's step", () => count(log(), "step 1 running") === 2);
      assertEquals(await get(url), "v2\nbuilt\n");
      assertEquals(count(log(), "step 2 running"), 2, log());
      assertEquals(count(log(), "step 3 running"), 2, log());
      assert(!log().includes("failed"), log());
    } finally {
      await hd(["down"], { store, cwd: dir });
      await reg.stop().catch(() => {});
      await new Deno.Command("sh", {
        args: ["-c", `umount -l "${dir}/.hd/sandbox/root" 2>/dev/null; true`],
      }).output();
    }
  },
);
