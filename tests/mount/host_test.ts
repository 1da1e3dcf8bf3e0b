/**
 * The store's mount server (src/mount/host.ts, host_server.ts): which requests it takes, and, with
 * real mounts, that later mounts of a store are served by the first one's process, each on its
 * own, without a hang where a blocking call would wait for the server itself.
 */
import { assert, assertEquals } from "../_assert.ts";
import { tempDir, testIf } from "../_helpers.ts";
import {
  admits,
  askMountServer,
  insideMount,
  type MountRequest,
  mountServerLock,
  mountServerSocket,
  parseLinger,
  parseMountRequest,
  type ServerState,
} from "../../src/mount/host.ts";
import { servedText } from "../../src/cli/mount_early.ts";
import { jsonlRequest } from "../../src/sys/jsonl.ts";
import { HdError } from "../../src/sys/errors.ts";
import { isAlive } from "../../src/sys/proc.ts";
import { lexists } from "../../src/sys/fs.ts";
import { hd } from "../_helpers.ts";
import { fuseSkip, hdOk } from "./_util.ts";

Deno.test("admits: a server takes a read-only mount for its own user and mount namespace", () => {
  const srv: ServerState = { exiting: false, mntns: "mnt:[1]", uid: 0 };
  type Req = { mntns: string | null; uid: number | null; rw: boolean };
  const ro: Req = { mntns: "mnt:[1]", uid: 0, rw: false };
  const table: [typeof srv, Req, string][] = [
    [srv, ro, "ok"],
    [srv, { ...ro, mntns: "mnt:[2]" }, "the client is in another mount namespace"],
    [srv, { ...ro, uid: 1000 }, "the client runs as another user"],
    [srv, { ...ro, uid: null }, "the client runs as another user"],
    [srv, { ...ro, mntns: null }, "the mount namespace is unknown"],
    [{ ...srv, mntns: null }, ro, "the mount namespace is unknown"],
    [{ ...srv, exiting: true }, ro, "the mount server is exiting"],
    [srv, { ...ro, rw: true }, "a writable mount gets a process of its own"],
  ];
  for (const [s, req, want] of table) {
    const got = admits(s, req);
    assertEquals("ok" in got ? "ok" : got.retry, want, JSON.stringify([s, req]));
  }
});

Deno.test("parseLinger: whole seconds from 0 to 86400, else the default with a reason", () => {
  const table: [string | undefined, number, boolean][] = [
    [undefined, 120_000, false],
    ["", 120_000, false],
    ["0", 0, false],
    ["30", 30_000, false],
    ["86400", 86_400_000, false],
    ["86401", 120_000, true],
    ["-1", 120_000, true],
    ["1.5", 120_000, true],
    ["soon", 120_000, true],
    ["9".repeat(40), 120_000, true],
  ];
  for (const [v, ms, err] of table) {
    const got = parseLinger(v);
    assertEquals(got.ms, ms, String(v));
    assertEquals(got.error !== undefined, err, String(v));
  }
});

Deno.test("hd mount: a bad HD_MOUNT_LINGER is refused with its value, before any server starts", async () => {
  using tmp = tempDir();
  const d = tmp.path;
  const store = `${d}/store`;
  Deno.mkdirSync(`${d}/t`);
  Deno.writeTextFileSync(`${d}/t/f.txt`, "f\n");
  const root = JSON.parse(await hdOk(["cas", "add", `${d}/t`, "--json"], store)).root;
  Deno.mkdirSync(`${d}/m`);
  for (const v of ["soon", "-1", "86401"]) {
    const r = await hd(["mount", root, `${d}/m`], { store, env: { HD_MOUNT_LINGER: v } });
    assertEquals(r.code, 2, r.stderr);
    assertEquals(
      r.stderr.split("\n")[0],
      `error: Cannot mount ${root}: HD_MOUNT_LINGER=${JSON.stringify(v)} is not a number of ` +
        "seconds from 0 to 86400",
    );
    assert(r.stderr.includes("set HD_MOUNT_LINGER to whole seconds"), r.stderr);
    assertEquals(lexists(mountServerSocket(store)), false, "no server was started");
    assertEquals(fuseMounts().filter((l) => l.includes(`${d}/m`)), [], "nothing mounted");
  }
});

Deno.test("insideMount: the mount a path is or lies in, by whole path components", () => {
  const mounts = ["/mnt/a", "/srv/x/y"];
  const table: [string, string | null][] = [
    ["/mnt/a", "/mnt/a"],
    ["/mnt/a/b/c", "/mnt/a"],
    ["/mnt/ab", null],
    ["/mnt", null],
    ["/srv/x/y/z", "/srv/x/y"],
    ["/srv/x", null],
  ];
  for (const [p, want] of table) assertEquals(insideMount(p, mounts), want, p);
  assertEquals(insideMount("/anything", ["/"]), "/");
});

Deno.test("parseMountRequest: a request line is checked field by field", () => {
  const good: MountRequest = {
    op: "mount",
    ref: "trees/x",
    dir: "/m",
    rw: false,
    layers: true,
    log: null,
    mntns: "mnt:[1]",
    uid: 0,
  };
  assertEquals(parseMountRequest(good), good);
  const bad: [Record<string, unknown>, string][] = [
    [{ ...good, op: "stop" }, "not a mount"],
    [{ ...good, ref: "" }, "ref"],
    [{ ...good, ref: 7 }, "ref"],
    [{ ...good, dir: "rel/dir" }, "dir must be an absolute path"],
    [{ ...good, log: "x.log" }, "log must be null or an absolute path"],
    [{ ...good, rw: "yes" }, "flags"],
    [{ ...good, mntns: 1 }, "mntns"],
    [{ ...good, uid: 1.5 }, "uid"],
  ];
  for (const [req, why] of bad) {
    const got = parseMountRequest(req);
    assertEquals("invalid" in got ? got.invalid : "taken", why, JSON.stringify(req));
  }
  assertEquals(parseMountRequest(null), { invalid: "not a mount" });
});

Deno.test("mountServerSocket: in the store, or a short name under /tmp for a long store path", () => {
  assertEquals(mountServerSocket("/s", 0), "/s/mounts/server.sock");
  const long = `/${"x".repeat(120)}`;
  const p = mountServerSocket(long, 1000);
  assert(/^\/tmp\/hd-1000-mounts-[0-9a-f]{16}\.sock$/.test(p), p);
  assertEquals(mountServerSocket(long, 1000), p); // the same store, the same socket
  assert(mountServerSocket(`${long}y`, 1000) !== p);
});

Deno.test("servedText: what hd mount prints for a served mount, --json too", () => {
  const s = { pid: 42, root: "ab".repeat(32), dir: "/m", log: "/s/mounts/k.log" };
  assertEquals(
    servedText(s, { flags: ["--rw"] }),
    `mounted ${"ab".repeat(6)} on /m (rw) (pid 42)\n`,
  );
  assertEquals(JSON.parse(servedText(s, { flags: [], json: true })), {
    root: s.root,
    dir: "/m",
    pid: 42,
    rw: false,
    log: s.log,
  });
});

/** A store with two small trees; their roots. */
async function twoTrees(d: string, store: string): Promise<[string, string]> {
  for (const [n, text] of [["a", "alpha\n"], ["b", "beta\n"]]) {
    Deno.mkdirSync(`${d}/${n}/sub`, { recursive: true });
    Deno.writeTextFileSync(`${d}/${n}/sub/f.txt`, text);
  }
  const add = async (n: string) =>
    JSON.parse(await hdOk(["cas", "add", `${d}/${n}`, "--json"], store)).root as string;
  return [await add("a"), await add("b")];
}

const mountJson = async (args: string[], store: string, env: Record<string, string>) => {
  const r = await hd(["mount", ...args, "--json"], { store, env });
  if (r.code !== 0) throw new Error(`hd mount ${args.join(" ")} → ${r.code}\n${r.stderr}`);
  return JSON.parse(r.stdout) as { pid: number; dir: string };
};

/** Whether process `pid` has exited within `ms` (polled; an upper bound, not a speed check). */
async function gone(pid: number, ms: number): Promise<boolean> {
  for (let t = 0; t < ms && isAlive(pid, { zombies: "dead" }); t += 10) {
    await new Promise((r) => setTimeout(r, 10));
  }
  return !isAlive(pid, { zombies: "dead" });
}

const fuseMounts = () =>
  Deno.readTextFileSync("/proc/mounts").split("\n").filter((l) => l.includes(" fuse.hd "));

testIf(
  fuseSkip(),
  "mount server: later mounts of a store share the first one's process; unmount stops one; --all stops it",
  async () => {
    using d = tempDir();
    const store = `${d.path}/store`;
    const env = { HD_MOUNT_LINGER: "60" };
    const [a, b] = await twoTrees(d.path, store);
    for (const m of ["ma", "mb"]) Deno.mkdirSync(`${d.path}/${m}`);
    const before = fuseMounts().length;
    const ra = await mountJson([a, `${d.path}/ma`], store, env);
    let serverPid = ra.pid;
    try {
      const rb = await mountJson([b, `${d.path}/mb`], store, env);
      assertEquals(rb.pid, ra.pid, "the second mount is served by the first one's process");
      assertEquals(Deno.readTextFileSync(`${d.path}/ma/sub/f.txt`), "alpha\n");
      assertEquals(Deno.readTextFileSync(`${d.path}/mb/sub/f.txt`), "beta\n");
      for (const m of ["ma", "mb"]) {
        const recs = JSON.parse(await hdOk(["mount", "--json"], store)).mounts as {
          dir: string;
          shared?: boolean;
          state: string;
        }[];
        const rec = recs.find((r) => r.dir === `${d.path}/${m}`);
        assertEquals([rec?.state, rec?.shared], ["live", true], m);
      }
      // the same directory again: refused with the server's answer, not a wait on itself
      const again = await hd(["mount", a, `${d.path}/ma`], { store, env });
      assertEquals(again.code, 1);
      assert(/already serves/.test(again.stderr), again.stderr);
      // a directory inside one of its mounts: a process of its own serves it
      const inner = await mountJson([b, `${d.path}/ma/sub`], store, env);
      assert(inner.pid !== ra.pid, "a mount inside a served mount gets its own process");
      assertEquals(Deno.readTextFileSync(`${d.path}/ma/sub/sub/f.txt`), "beta\n");
      await hdOk(["unmount", `${d.path}/ma/sub`], store);
      // a writable mount: a process of its own, which serves no other mount
      Deno.mkdirSync(`${d.path}/mw`);
      const rw = await mountJson([b, `${d.path}/mw`, "--rw"], store, env);
      assert(rw.pid !== ra.pid, "a writable mount gets its own process");
      Deno.writeTextFileSync(`${d.path}/mw/new.txt`, "written\n");
      await hdOk(["unmount", `${d.path}/mw`], store);
      // one unmount stops that mount only
      await hdOk(["unmount", `${d.path}/ma`], store);
      assert(isAlive(ra.pid, { zombies: "dead" }), "the server serves mb still");
      assertEquals(Deno.readTextFileSync(`${d.path}/mb/sub/f.txt`), "beta\n");
      const list = await jsonlRequest(`${store}/mounts/server.sock`, { op: "list" }) as {
        mounts: string[];
      };
      assertEquals(list.mounts, [`${d.path}/mb`]);
      // `hd mount` lists the server beside the mounts
      const listed = JSON.parse(await hdOk(["mount", "--json"], store));
      assertEquals(listed.server, { pid: ra.pid, mounts: [`${d.path}/mb`] });
      const all = JSON.parse(await hdOk(["unmount", "--all", "--json"], store));
      assertEquals(all, { unmounted: [`${d.path}/mb`], server: ra.pid });
      assert(await gone(ra.pid, 5000), "the server exited");
      serverPid = 0;
      assertEquals(fuseMounts().length, before);
      assert(!lexists(`${store}/mounts/server.sock`), "its socket is removed");
    } finally {
      if (serverPid) await hd(["unmount", "--all"], { store });
    }
  },
);

testIf(
  fuseSkip(),
  "mount server: a dead server's socket, or a file in its place, is passed over; an idle server exits after its linger",
  async () => {
    using d = tempDir();
    const store = `${d.path}/store`;
    const [a] = await twoTrees(d.path, store);
    Deno.mkdirSync(`${d.path}/ma`);
    Deno.mkdirSync(`${store}/mounts`, { recursive: true });
    const sock = `${store}/mounts/server.sock`;
    // nobody listens on it: the socket of a server that was killed
    // (a process that exits while listening leaves its socket file behind)
    const dead = await new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `Deno.listen({ transport: "unix", path: ${JSON.stringify(sock)} }); Deno.exit(0)`,
      ],
    }).output();
    assertEquals(dead.code, 0);
    assert(lexists(sock), "the dead socket stays behind");
    let pid = 0;
    try {
      const r = await mountJson([a, `${d.path}/ma`], store, { HD_MOUNT_LINGER: "1" });
      pid = r.pid;
      assertEquals(Deno.readTextFileSync(`${d.path}/ma/sub/f.txt`), "alpha\n");
      // the new server took the store's socket over
      const list = await jsonlRequest(sock, { op: "list" }) as { pid: number };
      assertEquals(list.pid, r.pid);
      await hdOk(["unmount", `${d.path}/ma`], store);
      // lingering, then gone (within the 1 s linger plus slack; not a speed assertion)
      assert(await gone(pid, 10000), "the idle server exited after its linger");
      assert(!lexists(sock), "and removed its socket");
      pid = 0;
      // a regular file where the socket goes: not asked, a server is started all the same
      Deno.writeTextFileSync(sock, "not a socket\n");
      const r2 = await mountJson([a, `${d.path}/ma`], store, { HD_MOUNT_LINGER: "0" });
      pid = r2.pid;
      assertEquals(Deno.readTextFileSync(`${d.path}/ma/sub/f.txt`), "alpha\n");
      await hdOk(["unmount", `${d.path}/ma`], store);
      assert(await gone(pid, 5000), "with HD_MOUNT_LINGER=0 it exits at once");
      pid = 0;
    } finally {
      if (pid) await hd(["unmount", "--all"], { store });
    }
  },
);

testIf(
  fuseSkip(),
  "mount server: once its last mount ends it gives memory back, says so in its log, and serves on",
  async () => {
    using d = tempDir();
    const store = `${d.path}/store`;
    const env = { HD_MOUNT_LINGER: "60" };
    const [a] = await twoTrees(d.path, store);
    Deno.mkdirSync(`${d.path}/m`);
    const log = `${store}/mounts/server.log`;
    const released = (pid: number) => {
      try {
        return Deno.readTextFileSync(log).split("\n").filter((l) =>
          l.includes(`[${pid}] a mount ended: memory given back (RSS `)
        );
      } catch {
        return [];
      }
    };
    let pid = 0;
    try {
      for (let i = 1; i <= 2; i++) {
        const r = await mountJson([a, `${d.path}/m`], store, env);
        if (i === 1) pid = r.pid;
        assertEquals(r.pid, pid, "the same server, lingering between the mounts");
        assertEquals(Deno.readTextFileSync(`${d.path}/m/sub/f.txt`), "alpha\n");
        await hdOk(["unmount", `${d.path}/m`], store);
        // (an upper bound for the server to get to it, not a speed check)
        for (let t = 0; t < 10_000 && released(pid).length < i; t += 50) {
          await new Promise((res) => setTimeout(res, 50));
        }
        const lines = released(pid);
        assertEquals(lines.length, i, `the log says it gave memory back:\n${lines.join("\n")}`);
        assert(!lines[i - 1].includes("no malloc_trim"), lines[i - 1]);
      }
    } finally {
      await hd(["unmount", "--all"], { store });
    }
  },
);

testIf(
  fuseSkip(),
  "mount server: mounts served and unmounted in turn leave no fd open in the server",
  async () => {
    using d = tempDir();
    const store = `${d.path}/store`;
    const env = { HD_MOUNT_LINGER: "60" };
    const [a, b] = await twoTrees(d.path, store);
    for (const m of ["keep", "m"]) Deno.mkdirSync(`${d.path}/${m}`);
    const keep = await mountJson([a, `${d.path}/keep`], store, env);
    try {
      const fds = () => [...Deno.readDirSync(`/proc/${keep.pid}/fd`)].length;
      const counts: number[] = [];
      for (let i = 0; i < 4; i++) {
        const r = await mountJson([b, `${d.path}/m`], store, env);
        assertEquals(r.pid, keep.pid);
        assertEquals(Deno.readTextFileSync(`${d.path}/m/sub/f.txt`), "beta\n");
        await hdOk(["unmount", `${d.path}/m`], store);
        counts.push(fds());
      }
      assertEquals(new Set(counts).size, 1, `open fds after each cycle: ${counts.join(" ")}`);
    } finally {
      await hd(["unmount", "--all"], { store });
    }
  },
);

Deno.test("askMountServer: a server gone without a reply is started again once its lock is free", async () => {
  using tmp = tempDir();
  const store = tmp.path;
  Deno.mkdirSync(`${store}/mounts`);
  const path = mountServerSocket(store);
  // a "server" that takes each connection and closes it unanswered (as one killed mid-request)
  const l = Deno.listen({ transport: "unix", path });
  const serving = (async () => {
    try {
      for await (const c of l) c.close();
    } catch { /* closed */ }
  })();
  const req: MountRequest = {
    op: "mount",
    ref: "trees/x",
    dir: `${tmp.path}/mnt`,
    rw: false,
    layers: false,
    log: null,
    mntns: null,
    uid: null,
  };
  try {
    // no process holds the server's lock: nothing serves there, so the caller starts its own
    assertEquals(await askMountServer(store, req), null);
    // a live holder of the lock: an error that names it, not a second server beside it
    Deno.writeTextFileSync(mountServerLock(store), `${Deno.pid}\n`);
    using lock = Deno.openSync(mountServerLock(store), { read: true, write: true });
    assert(lock.tryLockSync(true));
    const e = await askMountServer(store, req).then(() => null, (e: Error) => e);
    assert(e instanceof HdError, String(e));
    assert(/did not answer .*closed without a reply/.test(e.message), e.message);
    assert(e.hint.includes(`pid ${Deno.pid}`), e.hint);
  } finally {
    l.close();
    await serving;
  }
});
