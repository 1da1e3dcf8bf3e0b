/**
 * `hd up` under stress: two at once (one build), SIGKILL of hd while a step or a service runs
 * (nothing of theirs survives), and the modes of what it writes under `.hd/`.
 * @module
 */
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { downAtEnd, hd, REPO, skipUnless, tempDir, testIf } from "../_helpers.ts";
import { isAlive } from "../../src/sys/proc.ts";
import { waitFor } from "./_util.ts";

const NEEDS = skipUnless({ commands: ["setsid", "sleep"] });

/** Starts `hd <args>` without waiting; the handle kills it (SIGKILL) when disposed. */
function spawnHd(args: string[], cwd: string, store: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", `${REPO}/cli.ts`, ...args],
    cwd,
    env: { HD_HOME: store, NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = child.output();
  return {
    pid: child.pid,
    output: async () => {
      const o = await output;
      const d = new TextDecoder();
      return { code: o.code, stdout: d.decode(o.stdout), stderr: d.decode(o.stderr) };
    },
    [Symbol.asyncDispose]: async () => {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
      await output.catch(() => {});
    },
  };
}

/** Writes `dir`/hd.toml: [environment] `name`, then `body`, then a 1s restart_grace. */
function projectToml(dir: string, name: string, body: string): void {
  Deno.writeTextFileSync(
    `${dir}/hd.toml`,
    `[environment]\nname = "${name}"\n\n${body}\n[options]\nrestart_grace = "1s"\n`,
  );
}

function readPid(path: string): number | null {
  try {
    const t = Deno.readTextFileSync(path).trim();
    return /^\d+$/.test(t) ? Number(t) : null;
  } catch {
    return null;
  }
}

testIf(NEEDS, "crash: two `hd up -d` at once run the build step once", async () => {
  using tmp = tempDir();
  using out = tempDir();
  using store = tempDir();
  projectToml(
    tmp.path,
    "twice",
    `[build]
steps = ["echo ran >> ${out.path}/runs.txt; sleep 1"]

[services.idle]
command = "sleep 300"
`,
  );
  await using _ = downAtEnd({ cwd: tmp.path, store: store.path });
  const [a, b] = await Promise.all([
    hd(["up", "-d"], { cwd: tmp.path, store: store.path }),
    hd(["up", "-d"], { cwd: tmp.path, store: store.path }),
  ]);
  const runs = Deno.readTextFileSync(`${out.path}/runs.txt`).trim().split("\n");
  assertEquals(runs.length, 1, `the step ran ${runs.length} times`);
  // both succeed: the one whose supervisor lost the lock reconciles with the winner
  assertEquals([a.code, b.code], [0, 0], a.stderr + b.stderr);
  const lost = a.stdout.includes("is up to date") ? a : b;
  assertIncludes(lost.stdout, "is up to date");
  // a foreground `hd up` next to it is refused at once, by the lock's holder
  const holder = readPid(`${tmp.path}/.hd/up.lock`);
  const c = await hd(["up"], { cwd: tmp.path, store: store.path });
  assertEquals(c.code, 1, c.stderr);
  assertIncludes(c.stderr, `\`hd up\` is already running (pid ${holder})`);
});

function stepProject(dir: string, out: string): void {
  projectToml(
    dir,
    "orphans",
    `[build]
steps = ["sleep 300 & echo $! > ${out}/step.pid; wait"]
`,
  );
}

for (const detached of [false, true]) {
  testIf(
    NEEDS,
    `crash: SIGKILL of ${detached ? "the detached supervisor" : "a foreground `hd up`"} ` +
      "during a build step leaves none of the step's processes",
    async () => {
      using tmp = tempDir();
      using out = tempDir();
      using store = tempDir();
      stepProject(tmp.path, out.path);
      await using up = spawnHd(detached ? ["up", "-d"] : ["up"], tmp.path, store.path);
      await using _ = downAtEnd({ cwd: tmp.path, store: store.path });
      await waitFor(() => readPid(`${out.path}/step.pid`) !== null, "the step's sleep", 30_000);
      const sleepPid = readPid(`${out.path}/step.pid`)!;
      assert(isAlive(sleepPid, { zombies: "dead" }), "the step's sleep runs");
      // the hd process that runs the step: the foreground one, or the supervisor it started
      const hdPid = detached ? readPid(`${tmp.path}/.hd/up.lock`)! : up.pid;
      assert(hdPid > 1 && isAlive(hdPid, { zombies: "dead" }), `hd runs (${hdPid})`);
      Deno.kill(hdPid, "SIGKILL");
      await waitFor(
        () => !isAlive(sleepPid, { zombies: "dead" }),
        "the step's sleep to die with hd",
        5_000,
      );
      // the next `hd up` starts cleanly (the lock died with the process)
      const again = await hd(["status"], { cwd: tmp.path, store: store.path });
      assertEquals(again.code, 0, again.stderr);
    },
  );
}

testIf(
  NEEDS,
  "crash: SIGKILL of the supervisor leaves none of the services' processes",
  async () => {
    using tmp = tempDir();
    using out = tempDir();
    using store = tempDir();
    projectToml(
      tmp.path,
      "orphans",
      `[services.kids]
command = "sleep 300 & echo $! > ${out.path}/svc.pid; wait"
`,
    );
    await using _ = downAtEnd({ cwd: tmp.path, store: store.path });
    const r = await hd(["up", "-d"], { cwd: tmp.path, store: store.path });
    assertEquals(r.code, 0, r.stderr);
    await waitFor(() => readPid(`${out.path}/svc.pid`) !== null, "the service's sleep");
    const sleepPid = readPid(`${out.path}/svc.pid`)!;
    const sup = readPid(`${tmp.path}/.hd/up.lock`)!;
    assert(sup > 1 && isAlive(sup, { zombies: "dead" }) && isAlive(sleepPid, { zombies: "dead" }));
    Deno.kill(sup, "SIGKILL");
    await waitFor(
      () => !isAlive(sleepPid, { zombies: "dead" }),
      "the service's sleep to die with hd",
      5_000,
    );
    const st = await hd(["status"], { cwd: tmp.path, store: store.path });
    assertEquals(st.code, 0, st.stderr);
    assertIncludes(st.stdout, "not running");
  },
);

function mode(path: string): string {
  return (Deno.statSync(path).mode! & 0o777).toString(8);
}

testIf(NEEDS, "crash: .hd/ is 0700 and what hd writes in it 0600, old modes fixed", async () => {
  using tmp = tempDir();
  using store = tempDir();
  projectToml(
    tmp.path,
    "modes",
    `[build]
steps = ["echo built"]

[services.idle]
command = "echo up; exec sleep 300"
`,
  );
  Deno.writeTextFileSync(`${tmp.path}/a.txt`, "a");
  // as an older hd left it: world-readable
  Deno.mkdirSync(`${tmp.path}/.hd/logs`, { recursive: true, mode: 0o755 });
  Deno.chmodSync(`${tmp.path}/.hd`, 0o755);
  Deno.chmodSync(`${tmp.path}/.hd/logs`, 0o755);
  Deno.writeTextFileSync(`${tmp.path}/.hd/logs/idle.log`, "old\n", { mode: 0o644 });
  Deno.chmodSync(`${tmp.path}/.hd/logs/idle.log`, 0o644);
  await using _ = downAtEnd({ cwd: tmp.path, store: store.path });
  const r = await hd(["up", "-d"], { cwd: tmp.path, store: store.path });
  assertEquals(r.code, 0, r.stderr);
  const d = `${tmp.path}/.hd`;
  const files = [
    `${d}/up.json`,
    `${d}/up.lock`,
    `${d}/control.sock`,
    `${d}/logs/hd.log`,
    `${d}/logs/idle.log`,
    `${d}/logs/build.log`,
    ...[...Deno.readDirSync(`${d}/steps`)].map((e) => `${d}/steps/${e.name}`),
  ];
  assertEquals([d, `${d}/logs`, `${d}/steps`].map(mode), ["700", "700", "700"]);
  for (const f of files) {
    assertEquals(mode(f), f.endsWith(".sock") ? mode(f) : "600", f);
    assertEquals(Deno.statSync(f).mode! & 0o077, 0, `${f} is private`);
  }
  const down = await hd(["down"], { cwd: tmp.path, store: store.path });
  assertEquals(down.code, 0, down.stderr);
  assertEquals(mode(`${d}/statcache.json`), "600");
});
