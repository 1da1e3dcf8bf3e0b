/**
 * The registry client through a front like the ones real registries sit behind: a proxy on
 * 127.0.0.1 that answers 503 to the first request and redirects blobs to another origin (the real
 * docker-registry), as registries redirect to a CDN. Credentials must not follow the redirect.
 */
import { assert, assertEquals } from "../_assert.ts";
import { hd, skipUnless, tempDir, testIf } from "../_helpers.ts";
import { makeTar, run, startRegistry, writeLayout } from "./_fixtures.ts";

testIf(
  skipUnless({ commands: ["docker-registry", "skopeo"] }),
  "retries a 503, follows blob redirects to another origin without credentials",
  async () => {
    using tmp = tempDir("hd-oci-front-");
    const reg = await startRegistry(tmp.path);
    const log: string[] = [];
    const cdnAuth: string[] = [];
    // The "CDN": another origin that serves blobs (from the registry) and notes what it is sent.
    const cdn = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
      cdnAuth.push(req.headers.get("authorization") ?? "");
      const res = await fetch(`http://${reg.host}${new URL(req.url).pathname}`);
      return new Response(res.body, { status: res.status, headers: res.headers });
    });
    const basic = "Basic " + btoa("u:p");
    let first = true;
    const front = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
      const url = new URL(req.url);
      const auth = req.headers.get("authorization") ?? "";
      log.push(`${url.pathname} auth=${auth}`);
      if (auth !== basic) {
        return new Response("who?", {
          status: 401,
          headers: { "www-authenticate": 'Basic realm="front"' },
        });
      }
      if (first) {
        first = false;
        return new Response("busy", { status: 503, headers: { "retry-after": "0" } });
      }
      const target = `http://${reg.host}${url.pathname}`;
      if (url.pathname.includes("/blobs/")) {
        const location = `http://127.0.0.1:${cdn.addr.port}${url.pathname}`;
        return new Response(null, { status: 307, headers: { location } });
      }
      const res = await fetch(target, { headers: { accept: req.headers.get("accept") ?? "" } });
      return new Response(res.body, { status: res.status, headers: res.headers });
    });
    try {
      const layout = `${tmp.path}/layout`;
      writeLayout(layout, "1", [{ tar: makeTar([{ path: "hello", data: "via a front\n" }]) }]);
      await run("skopeo", [
        "copy",
        "--dest-tls-verify=false",
        `oci:${layout}:1`,
        `docker://${reg.host}/front:1`,
      ]);
      const docker = `${tmp.path}/docker`;
      Deno.mkdirSync(docker);
      const frontHost = `127.0.0.1:${front.addr.port}`;
      Deno.writeTextFileSync(
        `${docker}/config.json`,
        JSON.stringify({ auths: { [frontHost]: { auth: btoa("u:p") } } }),
      );
      const store = `${tmp.path}/store`;
      const p = await hd(["pull", `${frontHost}/front:1`, "--json"], {
        store,
        env: { DOCKER_CONFIG: docker },
      });
      assertEquals(p.code, 0, p.stderr);
      assert(log.length >= 3, log.join("\n"));
      assert(log.some((l) => l.includes("/blobs/")), "blobs went through the front");
      assert(cdnAuth.length >= 2, "config and layer came from the CDN");
      assertEquals(cdnAuth.filter((a) => a !== ""), [], "no credentials sent to the CDN");
      const out = `${tmp.path}/out`;
      const c = await hd(["cas", "checkout", JSON.parse(p.stdout).rootfs, out], { store });
      assertEquals(c.code, 0, c.stderr);
      assertEquals(Deno.readTextFileSync(`${out}/hello`), "via a front\n");
    } finally {
      await front.shutdown();
      await cdn.shutdown();
      await reg.stop();
    }
  },
);
