/**
 * Warm restarts of a sandboxed service (`reload = "warm"` on a service of the environment's
 * `base`): on the compose proof's Debian image (nodejs), `web` runs in its container on the
 * environment's network, published on 127.0.0.1. hd keeps a standby container of the same service
 * that has preloaded the unwatched modules and listens on nothing; an edit of a watched file hands
 * over to it (the answer and the pid change, the log says warm), and an edit of a preloaded module
 * replaces the standby (in its slot, once the old container is gone) and the next edit hands over
 * to the new one; a watched `package.json` restarts cold, saying why.
 * The same for a plain (not warm) service: the next container is held ready (created, its shell
 * waiting before the command), and an edit starts the command in it.
 * @module
 */
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { hd, skipUnless, tempDir, testIf } from "../_helpers.ts";
import { freePort, startRegistry } from "../oci/_fixtures.ts";
import { COMPOSE_PACKAGES, debianRootfs, pushRootfs } from "../sandbox/_debian.ts";
import { listenerOf, servicePids } from "../../src/services/readiness.ts";

const skip = skipUnless({
  root: true,
  commands: ["runc", "unshare", "setpriv", "docker-registry", "skopeo", "setsid", "ip", "nft"],
  paths: ["/usr/bin/tini-static"],
}) ?? (Deno.env.get("HD_SKIP_DEBIAN") ? "HD_SKIP_DEBIAN is set" : null);

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

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
    await pause(50);
  }
  throw new Error(`no wanted answer from ${url} (last: ${last.slice(0, 300)})`);
}

/** web's row of `hd ps --json`: its pid and its ready standby's. */
async function webPids(
  dir: string,
  store: string,
): Promise<{ pid: number | null; standby: number | null }> {
  const r = await hd(["ps", "--json"], { store, cwd: dir });
  const v = JSON.parse(r.stdout);
  const rows: { name: string; pid?: number | null; standby?: number | null }[] = Array.isArray(v)
    ? v
    : v.services;
  const w = rows.find((s) => s.name === "web");
  return { pid: w?.pid ?? null, standby: w?.standby ?? null };
}

/** Waits (bounded by tries, not asserted in time) until web has a ready standby (not `not`). */
async function untilStandby(
  dir: string,
  store: string,
  not: number | null = null,
): Promise<{ pid: number; standby: number }> {
  for (let i = 0; i < 600; i++) {
    const p = await webPids(dir, store);
    if (p.pid !== null && p.standby !== null && p.standby !== not) {
      return { pid: p.pid, standby: p.standby };
    }
    await pause(100);
  }
  throw new Error("web's standby never became ready");
}

/** Waits (bounded by tries) until web's log has `line`. */
async function untilLog(dir: string, store: string, line: string): Promise<void> {
  let last = "";
  for (let i = 0; i < 300; i++) {
    last = (await hd(["logs", "web"], { store, cwd: dir })).stdout;
    if (last.includes(line)) return;
    await pause(100);
  }
  throw new Error(`web's log never said "${line}":\n${last}`);
}

const SERVER = `const http = require("http");
const dep = require("../lib/dep.js");
const message = require("./message.js");
http.createServer((q, s) => s.end("web " + message + " " + dep + " pid " + process.pid + "\\n"))
  .listen(3000, "0.0.0.0", () => console.log("web listening"));
`;

/** What a test of web's containers gets: the project, its store and web's published URL. */
interface App {
  dir: string;
  store: string;
  url: string;
}

/**
 * Runs `body` on web (src/server.js on the Debian image, published on 127.0.0.1) with `service`'s
 * extra hd.toml lines and `watch`, brought up with `--wait`; `hd down` and the registry's stop
 * afterwards whatever happens.
 */
async function withWebApp(
  name: string,
  service: string,
  body: (app: App) => Promise<void>,
): Promise<void> {
  const img = await debianRootfs(COMPOSE_PACKAGES);
  if ("skip" in img) {
    console.log(`SKIP ${name}: ${img.skip}`);
    return;
  }
  using tmp = tempDir();
  const reg = await startRegistry(tmp.path);
  const store = `${tmp.path}/store`;
  const dir = `${tmp.path}/app`;
  try {
    const ref = `${reg.host}/hd-compose:bookworm`;
    await pushRootfs(img.rootfs, tmp.path, ref);
    const port = freePort();
    for (const d of ["src", "lib"]) Deno.mkdirSync(`${dir}/${d}`, { recursive: true });
    Deno.writeTextFileSync(`${dir}/src/server.js`, SERVER);
    Deno.writeTextFileSync(`${dir}/src/message.js`, 'module.exports = "v0";\n');
    Deno.writeTextFileSync(`${dir}/lib/dep.js`, 'module.exports = "dep1";\n');
    Deno.writeTextFileSync(`${dir}/package.json`, '{ "name": "w", "version": "1.0.0" }\n');
    Deno.writeTextFileSync(
      `${dir}/hd.toml`,
      `[environment]
name = "${name}"
base = "${ref}"

[services.web]
command = "node src/server.js"
${service}port = 3000
ports = ["127.0.0.1:${port}:3000"]

[options]
restart_grace = "1s"
debounce = "10ms"
`,
    );
    const up = await hd(["up", "-d", "--wait", "--wait-timeout", "3m"], { store, cwd: dir });
    assertEquals(up.code, 0, up.stderr + up.stdout);
    await body({ dir, store, url: `http://127.0.0.1:${port}/` });
  } finally {
    await hd(["down"], { store, cwd: dir });
    await reg.stop();
    await new Deno.Command("sh", {
      args: ["-c", `umount -l "${dir}/.hd/sandbox/root" 2>/dev/null; true`],
    }).output();
  }
}

/** `hd down`, then: no container of web is left in runc's state, and none of `pids` runs. */
async function downLeavesNothing(app: App, pids: number[]): Promise<void> {
  assertEquals((await hd(["down"], { store: app.store, cwd: app.dir })).code, 0);
  let left: string[] = [];
  try {
    left = [...Deno.readDirSync(`${app.dir}/.hd/sandbox/run/runc`)].map((e) => e.name)
      .filter((n) => n.includes("-svc-web"));
  } catch { /* no state root: nothing left */ }
  assertEquals(left, []);
  for (const pid of pids) {
    let alive = true;
    try {
      Deno.statSync(`/proc/${pid}`);
    } catch {
      alive = false;
    }
    assert(!alive, `pid ${pid} still runs after hd down`);
  }
}

testIf(
  skip,
  "sandboxed warm service: the standby container takes over, or cold says why",
  () =>
    withWebApp("e2e-warm", 'reload = "warm"\nwatch = ["src/**", "package.json"]\n', async (app) => {
      const first = await get(app.url);
      assert(first.startsWith("web v0 dep1 pid "), first);

      // a standby container waits, listening on nothing (it runs none of web's code before go)
      const a = await untilStandby(app.dir, app.store);
      assert(a.standby !== a.pid);
      assertEquals(listenerOf(3000, servicePids(a.standby)), null);
      assert(listenerOf(3000, servicePids(a.pid)) !== null, "web's own container listens");

      // an edit of a watched file: handed over to the standby (new pid, new answer)
      Deno.writeTextFileSync(`${app.dir}/src/message.js`, 'module.exports = "v1";\n');
      const second = await get(app.url, (s) => s.startsWith("web v1"));
      assert(second.startsWith("web v1 dep1 pid "), second);
      const b = await untilStandby(app.dir, app.store);
      assertEquals(b.pid, a.standby, "the standby's group became web's");
      assert(b.standby !== a.standby && b.standby !== a.pid);
      assertEquals(listenerOf(3000, servicePids(b.standby)), null);
      const logs = await hd(["logs", "web"], { store: app.store, cwd: app.dir });
      assertIncludes(logs.stdout, "warm: its standby had preloaded");

      // again, from the other standby slot
      Deno.writeTextFileSync(`${app.dir}/src/message.js`, 'module.exports = "v2";\n');
      assert((await get(app.url, (s) => s.startsWith("web v2"))).startsWith("web v2 dep1"));
      const c = await untilStandby(app.dir, app.store);
      assertEquals(c.pid, b.standby);

      // lib/dep.js changed (preloaded, not watched): web goes on, its standby is replaced — in
      // the slot the old standby held, once that container is gone
      Deno.writeTextFileSync(`${app.dir}/lib/dep.js`, 'module.exports = "dep2";\n');
      await untilLog(app.dir, app.store, "standby replaced: lib/dep.js changed");
      const c2 = await untilStandby(app.dir, app.store, c.standby);
      assertEquals(c2.pid, c.pid);
      // handed over to the new standby, which loaded the new dep.js
      Deno.writeTextFileSync(`${app.dir}/src/message.js`, 'module.exports = "v3";\n');
      assert((await get(app.url, (s) => s.startsWith("web v3"))).startsWith("web v3 dep2"));
      const e = await untilStandby(app.dir, app.store);
      assertEquals(e.pid, c2.standby);
      const warm = (await hd(["logs", "web"], { store: app.store, cwd: app.dir })).stdout
        .split("warm: its standby had preloaded").length - 1;
      assertEquals(warm, 3);

      // package.json changed (watched: the dependencies may differ): cold, and hd says why
      Deno.writeTextFileSync(`${app.dir}/package.json`, '{ "name": "w", "version": "1.0.1" }\n');
      await untilLog(app.dir, app.store, "cold start: package.json changed");
      const d = await untilStandby(app.dir, app.store, e.standby);
      assert(d.pid !== e.pid && d.pid !== e.standby, "a cold start: neither old process");
      assert((await get(app.url)).startsWith("web v3 dep2"));

      // hd down stops the standby container too: web's group and its standby's are gone
      await downLeavesNothing(app, [d.pid, d.standby]);
    }),
);

testIf(
  skip,
  "sandboxed plain service: a restart after an edit starts the command in the container held ready",
  () =>
    withWebApp("e2e-held", 'watch = ["src/**"]\n', async (app) => {
      assert((await get(app.url)).startsWith("web v0 dep1 pid "));

      // a container is held ready beside web's: created, its shell waiting, listening on nothing
      const a = await untilStandby(app.dir, app.store);
      assert(a.standby !== a.pid);
      assertEquals(listenerOf(3000, servicePids(a.standby)), null);
      // (the standby's group is recorded once runc starts; its shell runs once the container is
      // created: waited for, bounded)
      const cmdlines = () =>
        servicePids(a.standby).map((p) => {
          try {
            return Deno.readTextFileSync(`/proc/${p}/cmdline`).split("\0").join(" ");
          } catch {
            return "";
          }
        });
      let held = cmdlines();
      for (let i = 0; i < 100 && !held.some((c) => c.includes("hd-held sh")); i++) {
        await pause(100);
        held = cmdlines();
      }
      assert(
        held.some((c) => c.includes("hd-held sh -c node src/server.js")),
        `the held shell waits before web's command: ${held.join(" | ")}`,
      );
      assert(!held.some((c) => c.startsWith("node ")), "no node runs in it before the go");

      // an edit: web runs again, in the held container (its group became web's), with the edit
      Deno.writeTextFileSync(`${app.dir}/src/message.js`, 'module.exports = "v1";\n');
      assert((await get(app.url, (s) => s.startsWith("web v1"))).startsWith("web v1 dep1"));
      const b = await untilStandby(app.dir, app.store);
      assertEquals(b.pid, a.standby, "the held container's group became web's");
      assert(b.standby !== a.standby && b.standby !== a.pid, "a new one is held in the other slot");
      await untilLog(app.dir, app.store, "in the container held ready");

      // and again from the other slot; an unwatched file edited meanwhile is read anew too (the
      // project is bound into the held container, nothing of it was loaded before the go)
      Deno.writeTextFileSync(`${app.dir}/lib/dep.js`, 'module.exports = "dep2";\n');
      Deno.writeTextFileSync(`${app.dir}/src/message.js`, 'module.exports = "v2";\n');
      assert((await get(app.url, (s) => s.startsWith("web v2"))).startsWith("web v2 dep2"));
      const c = await untilStandby(app.dir, app.store);
      assertEquals(c.pid, b.standby);

      // hd exec SERVICE runs in web's running container, as its user or as --user
      const asWeb = await hd(["exec", "web", "id", "-u"], { store: app.store, cwd: app.dir });
      assertEquals(asWeb.stdout.trim(), "0", asWeb.stderr);
      const asNobody = await hd(["exec", "--user", "nobody", "web", "sh", "-c", "id -u; id -g"], {
        store: app.store,
        cwd: app.dir,
      });
      assertEquals(asNobody.stdout.trim().split("\n"), ["65534", "65534"], asNobody.stderr);

      // hd down stops the held container too
      await downLeavesNothing(app, [c.pid, c.standby]);
    }),
);
