/**
 * Profiles and replicas through the real CLI on the host: `hd up -d --wait` starts the services
 * without profiles and shows the others as inactive; `--profile`/`HD_PROFILES` and naming a
 * service start them; `scale = 3` runs three replicas, each its own process group, listed by
 * `hd ps`, and a dependent waits for all of them.
 */
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { downAtEnd, hd, skipUnless, tempDir, testIf } from "../_helpers.ts";

const NEEDS = skipUnless({ commands: ["setsid"] });

interface Svc {
  name: string;
  state: string;
  pid: number | null;
  inactive?: string[];
}

function project(dir: string): void {
  Deno.writeTextFileSync(
    `${dir}/hd.toml`,
    `[environment]
name = "proftest"

[services.app]
command = "exec sleep 300"

[services.dbg]
command = "exec sleep 301"
profiles = ["debug"]

[services.trace]
command = "exec sleep 302"
profiles = ["trace"]

[services.worker]
command = "exec sleep 303"
scale = 3

[services.after]
command = "exec sleep 304"
depends_on = ["worker"]

[options]
restart_grace = "1s"
`,
  );
}

async function ps(opts: { cwd: string; store: string }): Promise<Svc[]> {
  const r = await hd(["ps", "--json"], opts);
  assertEquals(r.code, 0, r.stderr);
  return JSON.parse(r.stdout).services as Svc[];
}

testIf(NEEDS, "profiles: inactive until asked for; replicas each run on their own", async () => {
  using tmp = tempDir();
  using store = tempDir();
  project(tmp.path);
  const opts = { cwd: tmp.path, store: store.path };
  await using _down = downAtEnd(opts);
  const up = await hd(["up", "-d", "--wait"], opts);
  assertEquals(up.code, 0, up.stderr + up.stdout);
  let s = await ps(opts);
  const by = (n: string) => s.find((x) => x.name === n)!;
  assertEquals(s.map((x) => x.name), [
    "app",
    "dbg",
    "trace",
    "worker-1",
    "worker-2",
    "worker-3",
    "after",
  ]);
  assertEquals(by("app").state, "running");
  assertEquals(by("dbg").inactive, ["debug"]);
  assertEquals(by("trace").inactive, ["trace"]);
  // three replicas, three process groups of their own; `after` waited for them
  const pids = ["worker-1", "worker-2", "worker-3"].map((n) => by(n).pid);
  assert(pids.every((p) => p !== null) && new Set(pids).size === 3, JSON.stringify(s));
  for (const p of pids) {
    const stat = Deno.readTextFileSync(`/proc/${p}/stat`);
    const pgid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
    assertEquals(pgid, p, "each replica leads its own process group");
  }
  assertEquals(by("after").state, "running");
  const text = await hd(["ps"], opts);
  assert(/dbg\s+inactive \(profile debug\)/.test(text.stdout), text.stdout);

  // --profile on a running environment starts that profile's services
  const more = await hd(["up", "-d", "--wait", "--profile", "debug"], opts);
  assertEquals(more.code, 0, more.stderr + more.stdout);
  s = await ps(opts);
  assertEquals(by("dbg").state, "running");
  assertEquals(by("trace").inactive, ["trace"]);
  // HD_PROFILES does the same; an unknown profile is said
  const env = await hd(["up", "-d", "--wait"], { ...opts, env: { HD_PROFILES: "trace,nope" } });
  assertEquals(env.code, 0, env.stderr + env.stdout);
  assertIncludes(env.stderr, 'no service has profile "nope"');
  s = await ps(opts);
  assertEquals(by("trace").state, "running");

  // a scaled service's name: exec runs in its first replica, restart restarts every replica
  const ex = await hd(["exec", "worker", "sh", "-c", "echo $HD_SERVICE"], opts);
  assertEquals([ex.code, ex.stdout], [0, "worker-1\n"], ex.stderr);
  const rs = await hd(["restart", "worker", "--json"], opts);
  assertEquals(rs.code, 0, rs.stderr);
  const restarted = JSON.parse(rs.stdout).restarted as string[];
  for (const n of ["worker-1", "worker-2", "worker-3", "after"]) {
    assert(restarted.includes(n), `${n} restarted: ${restarted}`);
  }
});

testIf(NEEDS, "profiles: a named service starts whatever its profiles; scaled names", async () => {
  using tmp = tempDir();
  using store = tempDir();
  project(tmp.path);
  const opts = { cwd: tmp.path, store: store.path };
  await using _down = downAtEnd(opts);
  const up = await hd(["up", "-d", "--wait", "dbg", "worker"], opts);
  assertEquals(up.code, 0, up.stderr + up.stdout);
  const s = await ps(opts);
  const by = (n: string) => s.find((x) => x.name === n)!;
  assertEquals(by("dbg").state, "running");
  assertEquals(by("app").state, "stopped");
  assertEquals(by("app").inactive, undefined, "app has no profile: stopped, not inactive");
  for (const n of ["worker-1", "worker-2", "worker-3"]) assertEquals(by(n).state, "running");
  assertEquals(by("trace").inactive, ["trace"]);
});
