/**
 * The compose proof end to end, on a debootstrap Debian image with nodejs, npm and redis-server
 * built here (cached in /var/tmp/hd-test-images like the node-app's) and pushed to a
 * docker-registry on 127.0.0.1: `web` (node) → `api` (node) → `redis` (redis-server on its own
 * `image`, append-only data in a named volume), `migrate` a one-shot init service. Every check is
 * a real request from the host to web's published port: web asks api by name, api asks redis by
 * name, both listen on 3000; api started after redis was healthy and migrate had completed; a key
 * written before `hd down` is there after `hd up`; and `hd up -d --wait` fails naming api when api
 * crashes (`API_CRASH=1`, interpolated into hd.toml).
 * @module
 */
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { hd, skipUnless, tempDir, testIf } from "../_helpers.ts";
import { freePort, startRegistry } from "../oci/_fixtures.ts";
import { COMPOSE_PACKAGES, debianRootfs, pushRootfs } from "../sandbox/_debian.ts";
import { writeComposeApp } from "./_compose_app.ts";

const skip = skipUnless({
  root: true,
  commands: ["runc", "unshare", "setpriv", "docker-registry", "skopeo", "setsid", "ip", "nft"],
  paths: ["/usr/bin/tini-static"],
}) ?? (Deno.env.get("HD_SKIP_DEBIAN") ? "HD_SKIP_DEBIAN is set" : null);

async function get(url: string, want: (s: string) => boolean = () => true, ms = 30_000) {
  const t0 = Date.now();
  let last = "";
  while (Date.now() - t0 < ms) {
    try {
      const r = await fetch(url);
      last = await r.text();
      if (r.ok && want(last)) return last;
    } catch (e) {
      last = String(e);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no wanted answer from ${url} (last: ${last.slice(0, 300)})`);
}

testIf(skip, "compose app: web → api → redis by name, health, init, volume, --wait", async () => {
  const img = await debianRootfs(COMPOSE_PACKAGES);
  if ("skip" in img) {
    console.log(`SKIP compose app: ${img.skip}`);
    return;
  }
  using tmp = tempDir();
  const reg = await startRegistry(tmp.path);
  const store = `${tmp.path}/store`;
  const dir = `${tmp.path}/app`;
  try {
    const ref = `${reg.host}/hd-compose:bookworm`;
    await pushRootfs(img.rootfs, tmp.path, ref);
    const hostPort = freePort();
    writeComposeApp(dir, { ref, hostPort, name: "e2e-compose" });
    const url = `http://127.0.0.1:${hostPort}`;

    const up = await hd(["up", "-d", "--wait", "--wait-timeout", "3m"], { store, cwd: dir });
    assertEquals(up.code, 0, up.stderr + up.stdout);
    // web (port 3000 in its namespace, published on the host) asks api (port 3000 in its own) by
    // name; the answer went through both
    const root = await get(`${url}/`);
    assert(/^web v0 lock=1\.0\.0 \| api on \S+\n$/.test(root), root);
    // api asks redis by name: migrate's key, written before api started (api read it at start)
    assertEquals(await get(`${url}/seed`), "web v0 lock=1.0.0 | api by-migrate\n");
    assertEquals(await get(`${url}/boot`), "web v0 lock=1.0.0 | api seed at start by-migrate\n");
    const ps = await hd(["ps"], { store, cwd: dir });
    assert(/migrate\s+exited \(exit 0\)/.test(ps.stdout), ps.stdout + ps.stderr);
    assert(/redis\s+running/.test(ps.stdout), ps.stdout);
    // redis is healthy by its own check, run inside its container
    assertIncludes(ps.stdout, "PONG");

    // a key written through the chain, then web's source edited: web alone restarts
    assertEquals(await get(`${url}/set/k1/kept`), "web v0 lock=1.0.0 | api OK\n");
    Deno.writeTextFileSync(`${dir}/web/message.js`, 'module.exports = "v1";\n');
    assertEquals(
      await get(`${url}/get/k1`, (s) => s.startsWith("web v1")),
      "web v1 lock=1.0.0 | api kept\n",
    );

    // the named volume survives hd down / hd up (redis' append-only file in it)
    const down = await hd(["down"], { store, cwd: dir });
    assertEquals(down.code, 0, down.stderr);
    const up2 = await hd(["up", "-d", "--wait", "--wait-timeout", "2m"], { store, cwd: dir });
    assertEquals(up2.code, 0, up2.stderr + up2.stdout);
    assertEquals(await get(`${url}/get/k1`), "web v1 lock=1.0.0 | api kept\n");
    assertEquals((await hd(["down"], { store, cwd: dir })).code, 0);

    // api crashes at start: --wait fails, naming it
    const bad = await hd(["up", "-d", "--wait", "--wait-timeout", "2m"], {
      store,
      cwd: dir,
      env: { API_CRASH: "1" },
    });
    assert(bad.code !== 0, `hd up -d --wait succeeded with a crashing api: ${bad.stdout}`);
    const said = bad.stderr + bad.stdout;
    assert(/\bapi\b/.test(said), said);
    assertIncludes(said, "crashing on purpose");
  } finally {
    await hd(["down", "-v"], { store, cwd: dir });
    await reg.stop();
    await new Deno.Command("sh", {
      args: ["-c", `umount -l "${dir}/.hd/sandbox/root" 2>/dev/null; true`],
    }).output();
  }
});
