/**
 * Services with `image = "REF"`: the pure decisions (Docker's ENTRYPOINT/CMD combination, user
 * resolution through the image's passwd and group) as tables, and real runs — busybox images built
 * here, pushed to a docker-registry on 127.0.0.1, the service in a runc container of its own on
 * that image's root under the real supervisor, answering on 127.0.0.1, next to a host service (an
 * environment without `base`) or a base service.
 * @module
 */
import { assert, assertEquals } from "../_assert.ts";
import { tempDir, testIf } from "../_helpers.ts";
import { firstAnswer, sandboxSkip } from "./_util.ts";
import { throwsHd } from "../config/_util.ts";
import { Store } from "../../src/cas/store.ts";
import { loadSpec, parseSpec } from "../../src/config/parse.ts";
import { Supervisor } from "../../src/services/supervisor.ts";
import { HostRuntime } from "../../src/runtime/host.ts";
import { SandboxRuntime } from "../../src/runtime/sandbox.ts";
import { releaseEnv, unmountEnv } from "../../src/runtime/sandbox_steps.ts";
import {
  imageArgv,
  parseGroup,
  parsePasswd,
  releaseImageServices,
  resolveUser,
} from "../../src/runtime/image_services.ts";
import { isMountPoint } from "../../src/sandbox/rootfs.ts";
import { freePort } from "../oci/_fixtures.ts";
import { busyboxRegistry, imageRegistry, serviceImageLayers } from "../sandbox/_image.ts";

Deno.test("imageArgv combines entrypoint and command as Docker does", () => {
  const table: [
    string,
    { entrypoint?: string[]; argv?: string[] | null },
    { Entrypoint?: string[]; Cmd?: string[] },
    string[] | null,
  ][] = [
    ["image CMD alone", {}, { Cmd: ["redis-server"] }, ["redis-server"]],
    ["image ENTRYPOINT + CMD", {}, { Entrypoint: ["ep.sh"], Cmd: ["pg"] }, ["ep.sh", "pg"]],
    ["command replaces CMD", { argv: ["x", "-v"] }, { Entrypoint: ["ep"], Cmd: ["pg"] }, [
      "ep",
      "x",
      "-v",
    ]],
    ["entrypoint clears the image's CMD", { entrypoint: ["sh"] }, { Cmd: ["pg"] }, ["sh"]],
    ["entrypoint + command", { entrypoint: ["e"], argv: ["c"] }, { Entrypoint: ["x"] }, [
      "e",
      "c",
    ]],
    ["string command (sh -c)", { argv: ["/bin/sh", "-c", "a b"] }, {}, ["/bin/sh", "-c", "a b"]],
    ["nothing to run", {}, {}, null],
    ["empty image CMD", {}, { Cmd: [] }, null],
  ];
  for (const [what, svc, img, want] of table) assertEquals(imageArgv(svc, img), want, what);
});

Deno.test("resolveUser reads names from the image's passwd and group", () => {
  const passwd = parsePasswd(
    "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33:www:/var/www:/bin/sh\nbad line\n" +
      "evil:x:-1:0::/:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
  );
  const groups = parseGroup("root:x:0:\nwww:x:33:\nweb:x:82:www,app\napp:x:1000:\n");
  assertEquals(passwd.map((p) => p.name), ["root", "www", "app"]);
  const table: [string, { uid: number; gid: number; additionalGids: number[]; home: string }][] = [
    ["", { uid: 0, gid: 0, additionalGids: [], home: "/root" }],
    ["root", { uid: 0, gid: 0, additionalGids: [], home: "/root" }],
    ["www", { uid: 33, gid: 33, additionalGids: [82], home: "/var/www" }],
    ["33", { uid: 33, gid: 33, additionalGids: [82], home: "/var/www" }],
    ["www:web", { uid: 33, gid: 82, additionalGids: [], home: "/var/www" }],
    ["www:5", { uid: 33, gid: 5, additionalGids: [], home: "/var/www" }],
    ["4242", { uid: 4242, gid: 0, additionalGids: [], home: "/" }],
    ["4242:4243", { uid: 4242, gid: 4243, additionalGids: [], home: "/" }],
    ["app", { uid: 1000, gid: 1000, additionalGids: [82], home: "/home/app" }],
  ];
  for (const [u, want] of table) assertEquals(resolveUser(u, passwd, groups, "t"), want, u);
  const e = throwsHd(() => resolveUser("nobody", passwd, groups, 'service "db"'));
  assert(e.message.includes('Cannot run service "db" as user "nobody"'), e.message);
  const g = throwsHd(() => resolveUser("www:staff", passwd, groups, 'service "db"'));
  assert(g.message.includes('group "staff"'), g.message);
});

Deno.test("image keys in hd.toml: forms and located errors", () => {
  const load = (svc: string) =>
    parseSpec(`[environment]\nname = "t"\n\n[services.db]\n${svc}\n`, "/p/hd.toml");
  let s = load('image = "redis:7"').services.db;
  assertEquals([s.image, s.command, s.argv], ["redis:7", "", undefined]);
  s = load('image = "r"\ncommand = ["redis-server", "--port", "7000"]\nuser = "www:web"').services
    .db;
  assertEquals(s.argv, ["redis-server", "--port", "7000"]);
  assertEquals(s.command, "redis-server --port 7000");
  assertEquals(s.user, "www:web");
  s = load('image = "r"\nentrypoint = "exec x"\nworkdir = "/srv/./a/"').services.db;
  assertEquals(s.entrypoint, ["/bin/sh", "-c", "exec x"]);
  assertEquals(s.workdir, "/srv/a");
  // a host service may use the exec form too (run as a quoted shell line)
  s = load('command = ["printf", "%s\\n", "a b"]').services.db;
  assertEquals(s.command, "printf '%s\n' 'a b'"); // TOML's \n is a newline
  const bad: [string, string][] = [
    ['command = "x"\nuser = "www"', "user needs an image"],
    ['image = "r"\nworkdir = "srv"', "must be an absolute path"],
    ['image = "r"\ncommand = []', "command must not be an empty array"],
    ['image = "r"\ncommand = ["a", 1]', "item 2 is not a string"],
    ['image = "r"\nuser = "a b"', 'user "a b" is not a user name'],
    ['image = "a b"', "not an image reference"],
    ['command = "x"\nentrypoint = "y"', "entrypoint needs an image"],
    ["port = 3", 'service "db" needs a command'],
  ];
  for (const [svc, want] of bad) {
    const e = throwsHd(() => load(svc));
    assert(e.message.includes(want), `${svc}: ${e.message}`);
    assert(/hd\.toml:\d+:\d+: /.test(e.message), e.message);
  }
});

const skip = sandboxSkip;

const get = (url: string) => firstAnswer(url, 200);

/** Pids of live processes whose command line is exactly `argv`. */
function pidsOf(argv: string[]): number[] {
  const want = argv.join("\0");
  const out: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const c = Deno.readTextFileSync(`/proc/${e.name}/cmdline`).replace(/\0$/, "");
      if (c === want) out.push(Number(e.name));
    } catch { /* gone */ }
  }
  return out;
}

/** uid, gid and supplementary groups of `pid` (from /proc/PID/status). */
function ids(pid: number): { uid: number; gid: number; groups: number[] } {
  const st = Deno.readTextFileSync(`/proc/${pid}/status`);
  const f = (k: string) => (new RegExp(`^${k}:[ \\t]*(.*)$`, "m").exec(st)?.[1] ?? "").trim();
  return {
    uid: Number(f("Uid").split(/\s+/)[0]),
    gid: Number(f("Gid").split(/\s+/)[0]),
    groups: f("Groups").split(/\s+/).filter((x) => x).map(Number),
  };
}

function environOf(pid: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of Deno.readTextFileSync(`/proc/${pid}/environ`).split("\0")) {
    const i = kv.indexOf("=");
    if (i > 0) out[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return out;
}

testIf(skip, "image services run on their image's root next to a host service", async () => {
  using tmp = tempDir();
  const [p1, p2, p3] = [freePort(), freePort(), freePort()];
  // the image's CMD runs httpd as its USER in its WORKDIR with its Env
  const cmd = ["httpd", "-f", "-p", `127.0.0.1:${p1}`, "-h", "."];
  const { reg, ref } = await imageRegistry(tmp.path, serviceImageLayers(), "svc", {
    Env: ["PATH=/bin", "GREETING=from-image"],
    WorkingDir: "/var/www",
    User: "www",
    Cmd: cmd,
  });
  const dir = `${tmp.path}/proj`;
  Deno.mkdirSync(dir);
  Deno.writeTextFileSync(`${dir}/index.html`, "from the host project\n");
  const argv2 = ["httpd", "-f", "-p", `127.0.0.1:${p2}`, "-h", "."];
  Deno.writeTextFileSync(
    `${dir}/hd.toml`,
    `[environment]
name = "imgsvc"
env = { SHARED = "env-level" }

[services.web]
image = "${ref}"
port = ${p1}

[services.files]
image = "${ref}"
command = ${JSON.stringify(argv2)}
user = "app:web"
workdir = "/srv"
env = { GREETING = "from-service" }
port = ${p2}

[services.host]
command = "exec busybox httpd -f -p 127.0.0.1:${p3} -h ."
port = ${p3}
`,
  );
  const spec = loadSpec(`${dir}/hd.toml`);
  const store = Store.open(`${tmp.path}/store`, { create: true });
  const rt = await HostRuntime.create(spec, store);
  assertEquals(rt.servicesInPlace, false);
  let sup: Supervisor | null = null;
  try {
    await rt.prepare();
    await reg.stop(); // pulled once: nothing more is fetched
    await rt.ready();
    sup = new Supervisor({ services: rt.services, dir, env: rt.hostEnv, graceMs: 1000 });
    sup.start();
    assertEquals(await get(`http://127.0.0.1:${p1}/index.html`), "hello from the image\n");
    assertEquals(await get(`http://127.0.0.1:${p2}/index.html`), "hello from /srv\n");
    assertEquals(await get(`http://127.0.0.1:${p3}/index.html`), "from the host project\n");
    const [web] = pidsOf(cmd);
    const [files] = pidsOf(argv2);
    assert(web && files, `httpd processes: ${web} ${files}`);
    assertEquals(ids(web), { uid: 33, gid: 33, groups: [82] });
    assertEquals(ids(files), { uid: 1000, gid: 82, groups: [] });
    assertEquals(Deno.readLinkSync(`/proc/${web}/cwd`), "/var/www");
    assertEquals(Deno.readLinkSync(`/proc/${files}/cwd`), "/srv");
    const e1 = environOf(web), e2 = environOf(files);
    assertEquals([e1.GREETING, e1.HOME, e1.PATH, e1.HD_ENV], [
      "from-image",
      "/var/www",
      "/bin",
      "imgsvc",
    ]);
    assertEquals([e2.GREETING, e2.HOME], ["from-service", "/home/app"]);
    // [environment].env is for steps and services without an image of their own
    assertEquals(e1.SHARED, undefined);
    // the project is not mounted into an image service: its root is the image's
    assert(!exists(`/proc/${web}/root/app`));
    assert(!exists(`/proc/${web}/root/proj`));
    assertEquals(Deno.readTextFileSync(`/proc/${web}/root/etc/motd`), "layer 2\n");
    // a restart enters the same root; what the container wrote stays until hd down
    Deno.writeTextFileSync(`/proc/${web}/root/var/www/new.html`, "written\n");
    await sup.restart(["web"]);
    assertEquals(await get(`http://127.0.0.1:${p1}/new.html`), "written\n");
  } finally {
    await sup?.close();
    await reg.stop().catch(() => {});
    await releaseEnv(spec);
    releaseImageServices(spec);
  }
  for (const n of ["web", "files"]) {
    const root = `${dir}/.hd/sandbox/services/${n}/root`;
    assert(!isMountPoint(root), `${n} root still mounted`);
    assert(!exists(`${dir}/.hd/sandbox/services/${n}/upper`), `${n}: upper kept after down`);
  }
});

testIf(skip, "an image service beside the services of a base", async () => {
  using tmp = tempDir();
  const { reg, ref: base } = await busyboxRegistry(tmp.path);
  const other = await imageRegistry(`${tmp.path}/o`, serviceImageLayers(), "other", {
    Env: ["PATH=/bin"],
    Entrypoint: ["httpd", "-f"],
  });
  const [p1, p2] = [freePort(), freePort()];
  const dir = `${tmp.path}/proj`;
  Deno.mkdirSync(dir);
  Deno.writeTextFileSync(`${dir}/index.html`, "project\n");
  Deno.writeTextFileSync(
    `${dir}/hd.toml`,
    `[environment]
name = "mixed"
base = "${base}"

[services.app]
command = "cat /app/index.html > /data/copy; exec httpd -f -p 127.0.0.1:${p1} -h /app"
volumes = ["shared:/data", "./:/app/again:ro"]
tmpfs = ["/run"]
port = ${p1}

[services.img]
image = "${other.ref}"
command = ["-p", "127.0.0.1:${p2}", "-h", "/srv"]
port = ${p2}
`,
  );
  const spec = loadSpec(`${dir}/hd.toml`);
  const store = Store.open(`${tmp.path}/store`, { create: true });
  const rt = new SandboxRuntime(spec, store);
  let sup: Supervisor | null = null;
  try {
    await rt.prepare();
    await rt.ready();
    sup = new Supervisor({ services: rt.services, dir, env: rt.hostEnv, graceMs: 1000 });
    sup.start();
    assertEquals(await get(`http://127.0.0.1:${p1}/index.html`), "project\n");
    // the image's ENTRYPOINT with the service's command as its arguments
    assertEquals(await get(`http://127.0.0.1:${p2}/index.html`), "hello from /srv\n");
    const [pid] = pidsOf(["httpd", "-f", "-p", `127.0.0.1:${p2}`, "-h", "/srv"]);
    assert(pid, "the image service's httpd");
    assertEquals(ids(pid).uid, 0);
    // a base service's volumes: a named volume and a read-only bind beside the project
    assertEquals(await get(`http://127.0.0.1:${p1}/again/index.html`), "project\n");
    assertEquals(
      Deno.readTextFileSync(`${tmp.path}/store/volumes/mixed/shared/copy`),
      "project\n",
    );
  } finally {
    await sup?.close();
    await reg.stop().catch(() => {});
    await other.reg.stop().catch(() => {});
    await releaseEnv(spec);
    releaseImageServices(spec);
    unmountEnv(spec);
  }
});

function exists(p: string): boolean {
  try {
    Deno.lstatSync(p);
    return true;
  } catch {
    return false;
  }
}
