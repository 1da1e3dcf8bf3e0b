import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { downAtEnd, hd, REPO, skipUnless, tempDir, testIf } from "../_helpers.ts";
import { freePort, nodeListen, pidsWith, waitFor } from "./_util.ts";
import { parseLogLine } from "../../src/services/logs.ts";

const NEEDS = skipUnless({ commands: ["setsid", "node"] });

function project(dir: string, marker: string, port: number): void {
  Deno.writeTextFileSync(
    `${dir}/hd.toml`,
    `[environment]
name = "clitest"
env = { GREETING = "hi from hd.toml" }

[services.db]
command = "${nodeListen(port, marker).replaceAll('"', '\\"')}"
port = ${port}

[services.worker]
command = "sleep ${marker} & sleep ${marker} & echo worker-up; wait"
depends_on = ["db"]

[options]
restart_grace = "1s"
`,
  );
  Deno.writeTextFileSync(`${dir}/main.txt`, "hello");
}

testIf(NEEDS, "cli: status and down with nothing running say so and exit 0", async () => {
  using tmp = tempDir();
  using store = tempDir();
  project(tmp.path, "1", freePort());
  const down = await hd(["down"], { cwd: tmp.path, store: store.path });
  assertEquals(down.code, 0, down.stderr);
  assertIncludes(down.stdout, "nothing running for clitest");
  const st = await hd(["status", "--json"], { cwd: tmp.path, store: store.path });
  assertEquals(st.code, 0, st.stderr);
  assertEquals(JSON.parse(st.stdout).up, { running: false });
});

testIf(
  NEEDS,
  "cli: exec passes the environment, runs in the project, returns the exit code",
  async () => {
    using tmp = tempDir();
    using store = tempDir();
    project(tmp.path, "1", freePort());
    Deno.mkdirSync(`${tmp.path}/sub`);
    const r = await hd(["exec", "sh", "-c", 'echo "$GREETING|$PWD"; exit 7'], {
      cwd: `${tmp.path}/sub`,
      store: store.path,
    });
    assertEquals(r.code, 7, r.stderr);
    assertEquals(r.stdout.trim(), `hi from hd.toml|${Deno.realPathSync(tmp.path)}`);
  },
);

testIf(NEEDS, "cli: foreground up, SIGINT stops everything and leaves no process", async () => {
  using tmp = tempDir();
  using store = tempDir();
  const marker = `3000.${Math.floor(Math.random() * 1e9)}`; // a unique sleep time
  const port = freePort();
  project(tmp.path, marker, port);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", `${REPO}/cli.ts`, "up"],
    cwd: tmp.path,
    env: { HD_HOME: store.path, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const out: string[] = [];
  const reading = (async () => {
    for await (const c of child.stdout.pipeThrough(new TextDecoderStream())) out.push(c);
  })();
  await waitFor(() => out.join("").includes("worker | worker-up"), "worker up", 30_000);
  assert(pidsWith(marker).length >= 3, "node + two sleeps");
  // the control socket answers while it runs
  const st = await hd(["status", "--json"], { cwd: tmp.path, store: store.path });
  const up = JSON.parse(st.stdout).up;
  assertEquals(up.running, true);
  assertEquals(up.detached, false);
  assertEquals(up.services.map((s: { name: string; state: string }) => [s.name, s.state]), [
    ["db", "running"],
    ["worker", "running"],
  ]);
  child.kill("SIGINT");
  const status = await child.status;
  await reading;
  await child.stderr.cancel();
  assertEquals(status.code, 0);
  const text = out.join("");
  assertIncludes(text, "db     | listening");
  assert(
    text.indexOf("worker | \u2500\u2500 stopped") < text.indexOf("db     | \u2500\u2500 stopped"),
    "reverse order",
  );
  assertEquals(pidsWith(marker), []);
  // the state is gone
  const down = await hd(["down"], { cwd: tmp.path, store: store.path });
  assertIncludes(down.stdout, "nothing running");
});

testIf(NEEDS, "cli: up -d, restart, logs, down; a killed supervisor is cleaned up", async () => {
  using tmp = tempDir();
  using store = tempDir();
  const marker = `3000.${Math.floor(Math.random() * 1e9)}`; // a unique sleep time
  const port = freePort();
  project(tmp.path, marker, port);
  const opts = { cwd: tmp.path, store: store.path };
  await using _down = downAtEnd(opts);
  const up = await hd(["up", "-d", "--json"], opts);
  assertEquals(up.code, 0, up.stderr);
  const s = JSON.parse(up.stdout);
  assertEquals(s.services.map((x: { state: string }) => x.state), ["running", "running"]);
  assertEquals(s.services[0].ready, true);
  // a second `hd up -d` reconciles with the running supervisor instead of failing
  const again = await hd(["up", "-d"], opts);
  assertEquals(again.code, 0, again.stderr);
  assertIncludes(again.stdout, "clitest is up to date");
  const worker1 = s.services[1].pid;
  const db1 = s.services[0].pid;
  const rs = await hd(["restart", "worker", "--json"], opts);
  assertEquals(JSON.parse(rs.stdout).restarted, ["worker"], rs.stderr);
  const st = JSON.parse((await hd(["status", "--json"], opts)).stdout).up;
  assertEquals(st.services[0].pid, db1);
  assert(st.services[1].pid !== worker1);
  assertEquals(st.services[1].restarts, 1);
  const logs = await hd(["logs", "worker"], opts);
  assertEquals(logs.stdout.split("\n").filter((l) => l === "worker-up").length, 2);
  const bad = await hd(["restart", "wroker"], opts);
  assertEquals(bad.code, 2);
  assertIncludes(bad.stderr, 'did you mean "worker"');
  // kill the supervisor hard: its services are orphans now
  const state = JSON.parse(Deno.readTextFileSync(`${tmp.path}/.hd/up.json`));
  Deno.kill(state.pid, "SIGKILL");
  await waitFor(() => {
    try {
      return Deno.readTextFileSync(`/proc/${state.pid}/stat`).includes(") Z") === true;
    } catch {
      return true;
    }
  }, "supervisor gone");
  // its guardian kills its services' groups at once (they would hold their ports)
  await waitFor(() => pidsWith(marker).length === 0, "services gone with their supervisor", 5000);
  const down = await hd(["down", "--json"], opts);
  assertEquals(down.code, 0, down.stderr);
  const d = JSON.parse(down.stdout);
  assertEquals([d.stale, d.killed], [true, []]);
  await waitFor(() => pidsWith(marker).length === 0, "orphans killed");
});

testIf(
  NEEDS,
  "cli: editing hd.toml reloads; a broken one keeps the running environment",
  async () => {
    using tmp = tempDir();
    using store = tempDir();
    const opts = { cwd: tmp.path, store: store.path };
    await using _down = downAtEnd(opts);
    const toml = (greeting: string) =>
      `[environment]
name = "reload"
env = { GREETING = "${greeting}" }

[services.say]
command = "echo said-$GREETING; exec sleep 60"
`;
    Deno.writeTextFileSync(`${tmp.path}/hd.toml`, toml("one"));
    const up = await hd(["up", "-d"], opts);
    assertEquals(up.code, 0, up.stderr);
    const log = () => Deno.readTextFileSync(`${tmp.path}/.hd/logs/say.log`);
    await waitFor(() => log().includes("said-one"), "first start");
    Deno.writeTextFileSync(`${tmp.path}/hd.toml`, toml("two"));
    await waitFor(() => log().includes("said-two"), "reloaded with the new env");
    Deno.writeTextFileSync(
      `${tmp.path}/hd.toml`,
      toml("three").replace("[services.say]", "[services"),
    );
    await waitFor(
      () => Deno.readTextFileSync(`${tmp.path}/.hd/logs/hd.log`).includes("hd.toml has an error"),
      "reload refused",
    );
    // the supervisor keeps running the previous configuration
    const pid = JSON.parse(Deno.readTextFileSync(`${tmp.path}/.hd/up.json`)).pid;
    assert(Deno.statSync(`/proc/${pid}`).isDirectory);
    // (each log line starts with its time: src/services/logs.ts)
    const said = log().split("\n").map((l) => parseLogLine(l).line);
    assertEquals(said.filter((l) => l.startsWith("said-")), ["said-one", "said-two"]);
    Deno.writeTextFileSync(`${tmp.path}/hd.toml`, toml("four"));
    await waitFor(() => log().includes("said-four"), "reloaded after the fix");
    assertEquals((await hd(["down"], opts)).code, 0);
  },
);

testIf(NEEDS, "cli: up --json prints JSON events; logs -f follows", async () => {
  using tmp = tempDir();
  using store = tempDir();
  Deno.writeTextFileSync(
    `${tmp.path}/hd.toml`,
    `[environment]
name = "ticks"

[services.ticker]
command = "i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.1; done"
`,
  );
  const spawn = (args: string[]) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--quiet", `${REPO}/cli.ts`, ...args],
      cwd: tmp.path,
      env: { HD_HOME: store.path, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "null",
    }).spawn();
  const collect = (child: Deno.ChildProcess, into: string[]) =>
    (async () => {
      for await (const c of child.stdout.pipeThrough(new TextDecoderStream())) into.push(c);
    })();
  const upOut: string[] = [];
  const up = spawn(["up", "--json"]);
  const upDone = collect(up, upOut);
  await waitFor(() => {
    try {
      return Deno.readTextFileSync(`${tmp.path}/.hd/logs/ticker.log`).includes("tick-3");
    } catch {
      return false;
    }
  }, "ticks");
  const logsOut: string[] = [];
  const logs = spawn(["logs", "ticker", "-f"]);
  const logsDone = collect(logs, logsOut);
  await waitFor(() => logsOut.join("").includes("tick-3"), "old lines");
  const last = Number(/tick-(\d+)\n(?![\s\S]*tick-)/.exec(logsOut.join(""))?.[1] ?? 0);
  await waitFor(() => logsOut.join("").includes(`tick-${last + 3}\n`), "new lines followed");
  logs.kill("SIGINT");
  assertEquals((await logs.status).code, 0);
  await logsDone;
  up.kill("SIGINT");
  assertEquals((await up.status).code, 0);
  await upDone;
  const events = upOut.join("").trim().split("\n").map((l) => JSON.parse(l));
  const kinds = events.map((e) => e.event);
  assertEquals(kinds[0], "root");
  assert(kinds.includes("started") && kinds.includes("service"), kinds.join());
  assert(kinds.indexOf("stopping") > kinds.indexOf("started"), kinds.join());
  assertEquals(kinds.at(-1), "stopped");
  assert(events.some((e) => e.event === "service" && e.message === "stopped"), kinds.join());
});

testIf(NEEDS, "cli: Ctrl-C during a build step ends the step at once", async () => {
  using tmp = tempDir();
  using store = tempDir();
  const marker = `3000.${Math.floor(Math.random() * 1e9)}`;
  Deno.writeTextFileSync(
    `${tmp.path}/hd.toml`,
    `[environment]
name = "slowbuild"

[build]
steps = ["echo building; sleep ${marker}"]

[services.never]
command = "exec sleep 60"
`,
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", `${REPO}/cli.ts`, "up"],
    cwd: tmp.path,
    env: { HD_HOME: store.path, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const out: string[] = [];
  const reading = (async () => {
    for await (const c of child.stdout.pipeThrough(new TextDecoderStream())) out.push(c);
  })();
  await waitFor(() => out.join("").includes("build | [1] building"), "step running");
  const t0 = performance.now();
  child.kill("SIGINT");
  assertEquals((await child.status).code, 0);
  await reading;
  assert(performance.now() - t0 < 5000, "stopped quickly");
  assertEquals(pidsWith(marker), []);
  assert(!out.join("").includes("never  | \u2500\u2500 started"), out.join(""));
});

testIf(NEEDS, "cli: two hd up -d at once: one supervisor wins", async () => {
  using tmp = tempDir();
  using store = tempDir();
  project(tmp.path, `3000.${Math.floor(Math.random() * 1e9)}`, freePort());
  const opts = { cwd: tmp.path, store: store.path };
  await using _down = downAtEnd(opts);
  const [a, b] = await Promise.all([hd(["up", "-d"], opts), hd(["up", "-d"], opts)]);
  // the one whose supervisor lost the lock reconciles with the winner
  assertEquals([a.code, b.code], [0, 0], a.stderr + b.stderr);
  assert([a, b].some((r) => r.stdout.includes("clitest is up to date")), a.stdout + b.stdout);
  const st = JSON.parse((await hd(["status", "--json"], opts)).stdout).up;
  assertEquals(st.running, true);
  assertEquals((await hd(["down"], opts)).code, 0);
});
