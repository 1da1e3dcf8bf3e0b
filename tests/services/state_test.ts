/**
 * Planted and damaged state files under `.hd/`: hd must never signal what it did not start.
 * Each test starts its own victim (a `sleep` in its own session via setsid), plants a state file
 * naming it, runs real `hd status` / `hd down` / `hd up -d`, and checks the victim is alive.
 * @module
 */
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { downAtEnd, hd, skipUnless, tempDir, testIf } from "../_helpers.ts";
import { bootId, procStartTime } from "../../src/sys/proc.ts";
import { waitFor } from "./_util.ts";
import { lexists } from "../../src/sys/fs.ts";

const NEEDS = skipUnless({ commands: ["setsid", "sleep"] });

/** A `sleep` in its own session and process group (pid = pgid), killed when disposed. */
async function victim(): Promise<{ pid: number; alive(): boolean; [Symbol.dispose](): void }> {
  const child = new Deno.Command("setsid", {
    args: ["sleep", "600"],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  let exited = false;
  child.status.then(() => exited = true);
  // setsid execs sleep (it is not a group leader when spawned): the pid is the group's
  await waitFor(() => {
    try {
      const s = Deno.readTextFileSync(`/proc/${child.pid}/stat`);
      const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
      return Number(f[2]) === child.pid && s.includes("(sleep)");
    } catch {
      return false;
    }
  }, "the victim's own group");
  return {
    pid: child.pid,
    alive: () => !exited,
    [Symbol.dispose]() {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
    },
  };
}

function project(dir: string): void {
  Deno.writeTextFileSync(
    `${dir}/hd.toml`,
    `[environment]\nname = "planted"\n\n[services.idle]\ncommand = "sleep 300"\n\n[options]\nrestart_grace = "1s"\n`,
  );
}

function plant(dir: string, state: unknown): void {
  Deno.mkdirSync(`${dir}/.hd`, { recursive: true });
  Deno.writeTextFileSync(`${dir}/.hd/up.json`, JSON.stringify(state));
}

/** A well-formed state as a repository could ship it (no boot id of this machine). */
function shipped(group: { pgid: number; startTime?: number | null }, pid = 2 ** 22 - 3) {
  return {
    pid,
    startTime: 12345,
    socket: "/tmp/elsewhere.sock",
    dir: "/somewhere",
    env: "planted",
    startedAt: 0,
    detached: true,
    groups: [{ service: "idle", ...group }],
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A state in the shape hd writes, forged here on this machine (its boot id, a dead supervisor). */
function forged(group: { pgid: number; startTime: number; exe: string }) {
  return {
    pid: 2 ** 22 - 3,
    startTime: 12345,
    exe: "/usr/bin/deno",
    bootId: bootId(),
    dir: "/somewhere",
    env: "planted",
    startedAt: 0,
    detached: true,
    groups: [{ service: "idle", ...group }],
  };
}

for (const cmd of [["status"], ["down"], ["up", "-d"]]) {
  testIf(
    NEEDS,
    `state: a planted up.json naming another group: \`hd ${cmd.join(" ")}\``,
    async () => {
      using tmp = tempDir();
      using store = tempDir();
      project(tmp.path);
      using v = await victim();
      await using _ = downAtEnd({ cwd: tmp.path, store: store.path });
      const st = procStartTime(v.pid)!;
      const cases: [unknown, RegExp][] = [
        // shipped in a repository: not the shape hd writes (no exe, no boot id): ignored
        [shipped({ pgid: v.pid }), /up\.json: exe must be a non-empty string \(missing\)/],
        [shipped({ pgid: v.pid, startTime: null }), /up\.json: exe must be/],
        [shipped({ pgid: v.pid, startTime: st }), /up\.json: exe must be/],
        // the shape hd writes, but not what hd started
        [
          forged({ pgid: v.pid, startTime: st + 1, exe: "/usr/bin/sleep" }),
          /idle \(its pid was reused/,
        ],
        [forged({ pgid: v.pid, startTime: st, exe: "/usr/bin/node" }), /idle \(it runs .*sleep/],
        [{ ...forged({ pgid: v.pid, startTime: st, exe: "/usr/bin/sleep" }), bootId: "x" }, /boot/],
      ];
      for (const [state, re] of cases) {
        plant(tmp.path, state);
        const r = await hd(cmd, { cwd: tmp.path, store: store.path });
        await sleep(100);
        assert(v.alive(), `hd ${cmd.join(" ")} killed the planted group ${JSON.stringify(state)}`);
        assertEquals(r.code, 0, r.stderr);
        assert(re.test(r.stdout + r.stderr), `${re}: ${r.stdout}${r.stderr}`);
        if (cmd[0] === "up") {
          // the planted file was replaced by hd's own state, and `hd down` stops hd's own only
          const down = await hd(["down"], { cwd: tmp.path, store: store.path });
          assertIncludes(down.stdout, "stopped planted");
        } else if (cmd[0] === "down") {
          assertEquals(lexists(`${tmp.path}/.hd/up.json`), false); // removed, not acted on
        }
      }
    },
  );
}

testIf(NEEDS, "state: a planted up.json with pgid 1 (kill(-1) = everything)", async () => {
  using tmp = tempDir();
  using store = tempDir();
  project(tmp.path);
  using v = await victim();
  for (const pgid of [1, 0, -1, Deno.pid]) {
    plant(tmp.path, shipped({ pgid }, pgid === Deno.pid ? Deno.pid : 2 ** 22 - 3));
    const r = await hd(["status"], { cwd: tmp.path, store: store.path });
    await sleep(100);
    assert(v.alive(), `hd status with pgid ${pgid} killed an unrelated process`);
    assertEquals(r.code, 0, r.stderr);
  }
});

testIf(
  NEEDS,
  "state: up.json overwritten under a running hd up — hd down asks over the control socket",
  async () => {
    using tmp = tempDir();
    const dir = tmp.path;
    const store = `${dir}/.store`;
    project(dir);
    await using _down = downAtEnd({ cwd: dir, store });
    const up = await hd(["up", "-d"], { cwd: dir, store });
    assertEquals(up.code, 0, up.stderr + up.stdout);
    const st = JSON.parse(Deno.readTextFileSync(`${dir}/.hd/up.json`));
    const sup: number = st.pid;
    const svc: number = st.groups[0].pgid;
    const start = procStartTime(sup);
    // what a process inside could do to a state file it can write (the sandbox masks .hd/ now)
    Deno.writeTextFileSync(`${dir}/.hd/up.json`, "{}");
    const down = await hd(["down"], { cwd: dir, store });
    assertEquals(down.code, 0, down.stderr + down.stdout);
    assertIncludes(down.stdout, "over its control socket");
    // the supervisor (the very process, by start time) and its service are gone
    await waitFor(() => procStartTime(sup) !== start, "the supervisor exited");
    await waitFor(() => procStartTime(svc) === null, "its service exited");
  },
);
