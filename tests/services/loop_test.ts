import { assert, assertEquals, assertRejects } from "../_assert.ts";
import { skipUnless, tempDir, testIf } from "../_helpers.ts";
import { Store } from "../../src/cas/store.ts";
import { DevLoop } from "../../src/services/loop.ts";
import { compileEnv } from "../../src/env/compile.ts";
import type { BuildStepSpec } from "../../src/config/types.ts";
import { loadSpec } from "../../src/config/parse.ts";
import { envSpec, pidsWith, svc, waitFor } from "./_util.ts";

const NEEDS = skipUnless({ commands: ["setsid", "git"] });

function step(index: number, run: string, more: Partial<BuildStepSpec> = {}): BuildStepSpec {
  return { run, inputs: null, outputs: [], env: {}, network: "host", index, ...more };
}

function lines(path: string): string[] {
  try {
    return Deno.readTextFileSync(path).split("\n").filter(Boolean);
  } catch {
    return [];
  }
}

testIf(NEEDS, "loop: a git checkout of 500 files is one update and one restart", async () => {
  using tmp = tempDir();
  using st = tempDir();
  const dir = tmp.path;
  const git = (...args: string[]) =>
    new Deno.Command("git", {
      args: ["-c", "user.email=t@t", "-c", "user.name=t", ...args],
      cwd: dir,
      stdout: "null",
      stderr: "null",
    }).outputSync();
  Deno.mkdirSync(`${dir}/data`);
  for (let i = 0; i < 500; i++) Deno.writeTextFileSync(`${dir}/data/f${i}.txt`, `a${i}`);
  git("init", "-q", "-b", "a");
  git("add", "-A");
  git("commit", "-qm", "a");
  git("checkout", "-qb", "b");
  for (let i = 0; i < 500; i++) Deno.writeTextFileSync(`${dir}/data/f${i}.txt`, `b${i}`);
  git("commit", "-qam", "b");
  git("checkout", "-q", "a");
  const spec = envSpec(dir, {
    services: {
      reader: svc("reader", `echo start >> ${st.path}/starts; exec sleep 60`, { watch: ["data"] }),
    },
    options: { restartGraceMs: 1000, debounceMs: 50 },
  });
  const store = Store.open(`${st.path}/store`);
  const loop = await DevLoop.open({ spec, store, print: () => {} });
  await loop.start();
  try {
    await run();
  } finally {
    await loop.stop();
  }
  async function run() {
    await waitFor(() => lines(`${st.path}/starts`).length === 1, "first start");
    const root0 = loop.root;
    git("checkout", "-q", "b");
    await waitFor(() => loop.status().updates >= 1, "update");
    await new Promise((r) => setTimeout(r, 400));
    const s = loop.status();
    assertEquals(s.updates, 1);
    assertEquals(s.lastUpdate!.modified.length, 500);
    assertEquals(s.lastUpdate!.restarted, ["reader"]);
    assertEquals(lines(`${st.path}/starts`).length, 2);
    const fresh = await compileEnv(store, spec, { record: false });
    assertEquals(loop.root, fresh.envId);
    assert(loop.root !== root0);
  }
});

testIf(NEEDS, "loop: steps re-run by hash; a change during a step is the next update", async () => {
  using tmp = tempDir();
  using st = tempDir();
  const dir = tmp.path;
  const log = `${st.path}/steps.log`;
  Deno.writeTextFileSync(`${dir}/deps.lock`, "v1");
  Deno.writeTextFileSync(`${dir}/app.js`, "1");
  Deno.writeTextFileSync(`${dir}/other.txt`, "1");
  const spec = envSpec(dir, {
    build: {
      steps: [
        // declared inputs: only deps.lock invalidates it
        step(0, `echo install >> ${log}; mkdir -p vendor; cat deps.lock > vendor/x`, {
          inputs: ["deps.lock"],
          outputs: ["vendor"],
        }),
        // chained: every tracked change invalidates it; slow, so edits land while it runs
        step(1, `echo build >> ${log}; sleep 0.5`),
      ],
      cache: [],
    },
    services: {
      app: svc("app", "exec sleep 60", { watch: ["app.js"] }),
      side: svc("side", "exec sleep 60"),
    },
  });
  const store = Store.open(`${st.path}/store`);
  const out: string[] = [];
  let loop = await DevLoop.open({ spec, store, print: (s, l) => out.push(`${s} | ${l}`) });
  await loop.start();
  const first = loop;
  try {
    await part1();
  } finally {
    await first.stop();
  }
  async function part1() {
    assertEquals(lines(log), ["install", "build"]);
    await loop.supervisor.settled();
    const sidePid = loop.supervisor.status()[1].pid;

    // an edit of a tracked file: the chained step re-runs, install does not; app restarts
    Deno.writeTextFileSync(`${dir}/app.js`, "2");
    await waitFor(() => lines(log).length === 3, "build re-run starts");
    // while it runs (0.5 s), another file changes
    Deno.writeTextFileSync(`${dir}/other.txt`, "2");
    await waitFor(() => loop.status().updates === 2, "second update", 20_000);
    assertEquals(lines(log), ["install", "build", "build"].concat(["build"]));
    const s = loop.status();
    assertEquals(s.lastUpdate!.modified, ["other.txt"]);
    // nobody watches other.txt, and the chained build that re-ran declares no outputs: it hands
    // the services no new files, so nothing restarts
    assertEquals(s.lastUpdate!.stepsRun, [1]);
    assertEquals(s.lastUpdate!.restarted, []);
    assertEquals(loop.supervisor.status()[0].restarts, 1); // app, for app.js
    assertEquals(loop.supervisor.status()[1].pid, sidePid); // side never restarted
    // the step's outputs are not tracked: vendor/ never shows up as a change
    assert(!out.some((l) => /root .*vendor/.test(l)), out.join("\n"));

    // deps.lock: install re-runs (and then build, which chains on it)
    Deno.writeTextFileSync(`${dir}/deps.lock`, "v2");
    await waitFor(() => loop.status().updates === 3, "third update", 20_000);
    assertEquals(loop.status().lastUpdate!.stepsRun, [0, 1]);
    assertEquals(Deno.readTextFileSync(`${dir}/vendor/x`), "v2");
    // the re-run install restarted what runs on its outputs: side too, which watches nothing
    assertEquals(loop.status().lastUpdate!.restarted.sort(), ["app", "side"]);
  }

  // a new loop on the unchanged tree: every step cached, nothing runs
  for (const round of [1, 2]) {
    await new Promise((r) => setTimeout(r, 1100)); // past the racy window of the last save
    out.length = 0;
    loop = await DevLoop.open({
      spec,
      store,
      print: (s, l) => out.push(`${s} | ${l}`),
      noWatch: true,
    });
    try {
      await loop.start();
      assertEquals(loop.status().steps.map((x) => x.state), ["cached", "cached"]);
      assertEquals(lines(log).length, 6);
      // the second start reads no file: the first one re-read those written within the stat
      // cache's racy window of its last save, and saved them as settled
      if (round === 2) assert(out.some((l) => /\(\d+ files, 0 read/.test(l)), out.join("\n"));
    } finally {
      await loop.stop();
    }
  }
});

testIf(NEEDS, "loop: hd up SERVICE starts it and its dependencies only", async () => {
  using tmp = tempDir();
  using st = tempDir();
  const spec = envSpec(tmp.path, {
    services: {
      a: svc("a", "exec sleep 60"),
      b: svc("b", "exec sleep 60", { depends_on: ["a"] }),
      c: svc("c", "exec sleep 60"),
    },
  });
  const loop = await DevLoop.open({
    spec,
    store: Store.open(`${st.path}/store`),
    print: () => {},
    only: ["b"],
    noWatch: true,
  });
  await loop.start();
  await loop.supervisor.settled();
  assertEquals(loop.supervisor.status().map((s) => [s.name, s.state]), [
    ["a", "running"],
    ["b", "running"],
    ["c", "stopped"],
  ]);
  await loop.stop();
});

testIf(NEEDS, "loop: a failing step holds restarts back until it passes again", async () => {
  using tmp = tempDir();
  using st = tempDir();
  const dir = tmp.path;
  Deno.writeTextFileSync(`${dir}/gate.txt`, "good");
  Deno.writeTextFileSync(`${dir}/other.txt`, "1");
  const spec = envSpec(dir, {
    build: { steps: [step(0, "grep -q good gate.txt", { inputs: ["gate.txt"] })], cache: [] },
    services: { app: svc("app", "exec sleep 60", { watch: ["gate.txt", "other.txt"] }) },
  });
  const out: string[] = [];
  const loop = await DevLoop.open({
    spec,
    store: Store.open(`${st.path}/store`),
    print: (s, l) => out.push(`${s} | ${l}`),
  });
  await loop.start();
  try {
    await loop.supervisor.settled();
    Deno.writeTextFileSync(`${dir}/gate.txt`, "bad");
    await waitFor(() => loop.status().updates === 1, "update 1");
    assertEquals(loop.status().lastUpdate!.stepsFailed, [0]);
    assertEquals(loop.status().lastUpdate!.restarted, []);
    Deno.writeTextFileSync(`${dir}/other.txt`, "2"); // not an input: the failed step is retried
    await waitFor(() => loop.status().updates === 2, "update 2");
    assertEquals(loop.status().lastUpdate!.stepsFailed, [0]);
    Deno.writeTextFileSync(`${dir}/gate.txt`, "good again");
    await waitFor(() => loop.status().updates === 3, "update 3");
    assertEquals(loop.status().lastUpdate!.stepsRun, [0]);
    assertEquals(loop.status().lastUpdate!.restarted, ["app"]);
    assertEquals(loop.supervisor.status()[0].restarts, 1);
    assert(out.some((l) => l.includes("not restarting services: a build step failed")));
  } finally {
    await loop.stop();
  }
});

testIf(
  NEEDS,
  "loop: deletes, renames, new directories and atomic saves through the watcher",
  async () => {
    using tmp = tempDir();
    using st = tempDir();
    const dir = tmp.path;
    Deno.mkdirSync(`${dir}/src/lib`, { recursive: true });
    Deno.writeTextFileSync(`${dir}/src/a.js`, "a");
    Deno.writeTextFileSync(`${dir}/src/lib/b.js`, "b");
    Deno.writeTextFileSync(`${dir}/README`, "r");
    const spec = envSpec(dir, {
      services: { app: svc("app", "exec sleep 60", { watch: ["src"] }) },
      options: { restartGraceMs: 1000, debounceMs: 30 },
    });
    const store = Store.open(`${st.path}/store`);
    const loop = await DevLoop.open({ spec, store, print: () => {} });
    await loop.start();
    try {
      let n = 0;
      const step = async (what: string, change: () => void) => {
        change();
        n++;
        await waitFor(() => loop.status().updates === n, what);
        await new Promise((r) => setTimeout(r, 80)); // nothing more comes of it
        assertEquals(loop.status().updates, n, `${what}: one update`);
        const fresh = await compileEnv(store, spec, { record: false, noCache: true });
        assertEquals(loop.root, fresh.envId, `${what}: same root as a full scan`);
        return loop.status().lastUpdate!;
      };
      let u = await step("delete", () => Deno.removeSync(`${dir}/src/a.js`));
      assertEquals(u.removed, ["src/a.js"]);
      u = await step("rename", () => Deno.renameSync(`${dir}/src/lib/b.js`, `${dir}/src/lib/c.js`));
      assertEquals([u.added, u.removed], [["src/lib/c.js"], ["src/lib/b.js"]]);
      u = await step("new directory", () => {
        Deno.mkdirSync(`${dir}/src/new/deeper`, { recursive: true });
        Deno.writeTextFileSync(`${dir}/src/new/deeper/d.js`, "d");
      });
      assertEquals(u.added, ["src/new/deeper/d.js"]);
      u = await step("atomic save", () => {
        Deno.writeTextFileSync(`${dir}/src/.c.js.swx`, "c2");
        Deno.renameSync(`${dir}/src/.c.js.swx`, `${dir}/src/lib/c.js`);
      });
      assertEquals([u.modified, u.added, u.removed], [["src/lib/c.js"], [], []]);
      u = await step("new top-level directory", () => {
        Deno.mkdirSync(`${dir}/docs`);
        Deno.writeTextFileSync(`${dir}/docs/x.md`, "x");
      });
      assertEquals([u.added, u.restarted], [["docs/x.md"], []]);
      u = await step(
        "directory removed",
        () => Deno.removeSync(`${dir}/src/new`, { recursive: true }),
      );
      assertEquals(u.removed, ["src/new/deeper/d.js"]);
      assertEquals(loop.supervisor.status()[0].restarts, 5);
    } finally {
      await loop.stop();
    }
  },
);

testIf(
  NEEDS,
  "loop: a service's own settings in hd.toml apply in place; others keep running",
  async () => {
    using tmp = tempDir();
    using st = tempDir();
    const dir = tmp.path;
    const toml = (word: string, greeting = "hi") =>
      `[environment]
name = "inplace"
env = { GREETING = "${greeting}" }

[services.a]
command = "exec sleep 60"

[services.b]
command = "echo b-${word}; exec sleep 60"
`;
    Deno.writeTextFileSync(`${dir}/hd.toml`, toml("one"));
    const spec = loadSpec(`${dir}/hd.toml`);
    const out: string[] = [];
    let reloads = 0;
    const loop = await DevLoop.open({
      spec,
      store: Store.open(`${st.path}/store`),
      print: (s, l) => out.push(`${s} | ${l}`),
      onSpecChange: () => void reloads++,
    });
    await loop.start();
    try {
      await loop.supervisor.settled();
      const aPid = loop.supervisor.status()[0].pid;
      Deno.writeTextFileSync(`${dir}/hd.toml`, toml("two"));
      await waitFor(() => out.includes("b | b-two"), "b restarted with its new command");
      assertEquals(loop.supervisor.status()[0].pid, aPid);
      assertEquals(loop.status().lastUpdate!.restarted, ["b"]);
      assertEquals(reloads, 0);
      // [environment] changed: that needs a full reload (the caller's)
      Deno.writeTextFileSync(`${dir}/hd.toml`, toml("two", "hello"));
      await waitFor(() => reloads === 1, "reload asked for");
    } finally {
      await loop.stop();
    }
  },
);

/** The `start`/`end` times (ns) each step wrote to `path` as "<step> <start|end> <ns>" lines. */
function spans(path: string): Record<string, { start: number; end: number }> {
  const out: Record<string, { start: number; end: number }> = {};
  for (const l of lines(path)) {
    const [k, what, ns] = l.split(" ");
    out[k] ??= { start: NaN, end: NaN };
    out[k][what as "start" | "end"] = Number(ns) / 1e6;
  }
  return out;
}

/** A step that records its start and end time in `times` around `sleep 1`, then makes `out`. */
function timed(times: string, name: string, out: string): string {
  return `echo "${name} start $(date +%s%N)" >> ${times}; echo ${name} working; sleep 1; ` +
    `mkdir -p ${out}; echo "${name} end $(date +%s%N)" >> ${times}`;
}

const NEEDS_DATE = skipUnless({ commands: ["setsid", "date", "sleep"] });

testIf(
  NEEDS_DATE,
  "loop: independent host steps run side by side; a chained one waits",
  async () => {
    using tmp = tempDir();
    using st = tempDir();
    const dir = tmp.path;
    const times = `${st.path}/times`;
    Deno.writeTextFileSync(`${dir}/a.txt`, "1");
    Deno.writeTextFileSync(`${dir}/b.txt`, "1");
    const steps = (jobs: number) =>
      envSpec(dir, {
        build: {
          steps: [
            step(0, timed(times, "a", "out-a"), { inputs: ["a.txt"], outputs: ["out-a"] }),
            step(1, timed(times, "b", "out-b"), { inputs: ["b.txt"], outputs: ["out-b"] }),
            step(2, timed(times, "c", "out-c"), { outputs: ["out-c"] }), // chained
          ],
          cache: [],
        },
        options: { restartGraceMs: 1000, debounceMs: 30, jobs },
      });
    const store = Store.open(`${st.path}/store`);
    const out: string[] = [];
    const loop = await DevLoop.open({
      spec: steps(2),
      store,
      print: (s, l) => out.push(`${s} | ${l}`),
    });
    await loop.start();
    try {
      const overlap = () => {
        const t = spans(times);
        // the intervals of a and b overlap; c starts after both ended
        assert(t.a.start < t.b.end && t.b.start < t.a.end, JSON.stringify(t));
        assert(t.c.start >= Math.max(t.a.end, t.b.end), JSON.stringify(t));
      };
      overlap();
      assertEquals(loop.status().steps.map((s) => s.state), ["ran", "ran", "ran"]);
      // each output line carries its step number, whole
      assert(out.includes("build | [1] a working"), out.join("\n"));
      assert(out.includes("build | [2] b working"), out.join("\n"));
      assert(out.includes("build | [3] c working"), out.join("\n"));
      const log = Deno.readTextFileSync(`${dir}/.hd/logs/build.log`);
      assert(log.includes("[1] a working\n") && log.includes("[2] b working\n"), log);

      // a re-run after an edit: a's input changed, so a and (by the hash chain) b and c re-run,
      // a and b again side by side
      Deno.removeSync(times);
      Deno.writeTextFileSync(`${dir}/a.txt`, "2");
      await waitFor(() => loop.status().updates === 1, "update", 20_000);
      assertEquals(loop.status().lastUpdate!.stepsRun, [0, 1, 2]);
      overlap();
    } finally {
      await loop.stop();
    }

    // jobs = 1: the same steps one after the other (a, b, c), whatever the cores
    Deno.removeSync(times);
    Deno.removeSync(`${dir}/.hd/steps`, { recursive: true });
    const one = await DevLoop.open({ spec: steps(1), store, print: () => {}, noWatch: true });
    await one.start();
    await one.stop();
    const t = spans(times);
    assert(t.b.start >= t.a.end && t.c.start >= t.b.end, JSON.stringify(t));
  },
);

testIf(
  NEEDS_DATE,
  "loop: a failing step stops its dependents; a running sibling finishes",
  async () => {
    using tmp = tempDir();
    using st = tempDir();
    const dir = tmp.path;
    const times = `${st.path}/times`;
    Deno.writeTextFileSync(`${dir}/a.txt`, "1");
    Deno.writeTextFileSync(`${dir}/b.txt`, "1");
    const spec = envSpec(dir, {
      build: {
        steps: [
          step(0, "echo a failing; exit 3", { inputs: ["a.txt"], outputs: ["out-a"] }),
          step(1, timed(times, "b", "out-b"), { inputs: ["b.txt"], outputs: ["out-b"] }),
          step(2, timed(times, "c", "out-c"), { outputs: ["out-c"] }),
        ],
        cache: [],
      },
      options: { restartGraceMs: 1000, debounceMs: 30, jobs: 2 },
    });
    const store = Store.open(`${st.path}/store`);
    const out: string[] = [];
    const loop = await DevLoop.open({ spec, store, print: (s, l) => out.push(`${s} | ${l}`) });
    try {
      await assertRejects(() => loop.start(), /build step 1 \(`echo a failing; exit 3`\) failed/);
    } finally {
      await loop.stop();
    }
    const t = spans(times);
    assert(t.b.end > 0, "b (already running) finished"); // and is cached for the next run
    assertEquals(t.c, undefined); // the dependent never started
    assertEquals(loop.status().steps.map((s) => s.state), ["failed", "ran", "pending"]);
    assert(
      out.includes(
        "hd | step 1 failed with exit code 3 after " + loop.status().steps[0].ms + " ms",
      ),
    );
  },
);

testIf(NEEDS_DATE, "loop: stop ends every running step at once", async () => {
  using tmp = tempDir();
  using st = tempDir();
  const dir = tmp.path;
  const marker = `hd-steps-stop-${crypto.randomUUID()}`;
  Deno.writeTextFileSync(`${dir}/a.txt`, "1");
  Deno.writeTextFileSync(`${dir}/b.txt`, "1");
  const slow = (n: string) => `echo ${n} up; exec sh -c "sleep 30; :" ${marker}-${n}`;
  const spec = envSpec(dir, {
    build: {
      steps: [
        step(0, slow("a"), { inputs: ["a.txt"], outputs: ["out-a"] }),
        step(1, slow("b"), { inputs: ["b.txt"], outputs: ["out-b"] }),
      ],
      cache: [],
    },
    options: { restartGraceMs: 1000, debounceMs: 30, jobs: 2 },
  });
  const store = Store.open(`${st.path}/store`);
  const out: string[] = [];
  const loop = await DevLoop.open({ spec, store, print: (s, l) => out.push(`${s} | ${l}`) });
  const starting = loop.start().catch((e) => e);
  await waitFor(
    () => out.includes("build | [1] a up") && out.includes("build | [2] b up"),
    "both up",
  );
  assertEquals(pidsWith(marker).length, 2);
  await loop.stop();
  await starting;
  assertEquals(pidsWith(marker), []);
});
