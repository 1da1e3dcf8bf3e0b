/**
 * Sandboxed build steps through the real CLI (`hd shell`): the base image is pulled from a
 * docker-registry on 127.0.0.1, a step runs in the sandbox and its writes become a CAS layer,
 * the second run hits the cache, an edit of a declared input reruns it, a cache dir persists
 * outside the layers, and a failing step names itself and keeps nothing.
 * @module
 */
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { hd, REPO, skipUnless, tempDir, testIf } from "../_helpers.ts";
import { isMountPoint } from "../../src/sandbox/rootfs.ts";
import { busyboxRegistry } from "../sandbox/_image.ts";
import { cleanStaleBuilds, unmountEnv } from "../../src/runtime/sandbox_steps.ts";
import { loadSpec } from "../../src/config/parse.ts";
import { Store } from "../../src/cas/store.ts";
import { DevLoop } from "../../src/services/loop.ts";

const skip = skipUnless({
  root: true,
  commands: ["runc", "unshare", "setpriv", "docker-registry", "skopeo"],
  paths: ["/bin/busybox", "/usr/bin/tini-static"],
});

/** A registry serving busybox (`ref`), and the store and project paths of a test under `tmp`. */
async function setup(tmp: string) {
  const { reg, ref } = await busyboxRegistry(tmp);
  return { reg, ref, store: `${tmp}/store`, dir: `${tmp}/proj` };
}

/** Stops the registry, then unmounts what the project's environment left mounted. */
async function teardown(reg: { stop(): Promise<void> }, dir: string): Promise<void> {
  await reg.stop();
  unmountEnv(loadSpec(`${dir}/hd.toml`));
}

function project(dir: string, ref: string, steps: string): void {
  Deno.mkdirSync(`${dir}/src`, { recursive: true });
  Deno.writeTextFileSync(`${dir}/src/msg.txt`, "one\n");
  Deno.writeTextFileSync(
    `${dir}/hd.toml`,
    `[environment]
name = "sbx"
base = "${ref}"
env = { GREETING = "hi" }

[build]
steps = [
${steps}
]
cache = ["~/.cache/x"]
`,
  );
}

const STEPS =
  `  { run = "mkdir -p out && cp src/msg.txt out/msg.txt && cat /proc/sys/kernel/random/uuid > /opt/stamp && ` +
  `echo run >> /root/.cache/x/runs && rm /var/www/index.html && echo step >> /etc/motd", inputs = ["src"], outputs = ["out"] },`;

testIf(
  skip,
  "build step: runs in the sandbox, output layer cached, rerun on input change",
  async () => {
    using tmp = tempDir();
    const { reg, ref, store, dir } = await setup(tmp.path);
    const hermetic = '{ run = "grep -c : /proc/net/dev > /opt/ifaces", inputs = [], ' +
      'network = "none" },';
    project(dir, ref, `${STEPS}\n  ${hermetic}`);
    try {
      const net = await hd(["shell", "--", "cat", "/opt/ifaces"], { store, cwd: dir });
      assertEquals(net.stdout, "1\n", "a hermetic step sees only lo");
      const cmd = "cat out/msg.txt /opt/stamp; echo $GREETING $HD_ENV; pwd; " +
        "test -e /var/www/index.html || echo deleted; ls /root/.cache/x";
      const r1 = await hd(["shell", "--", "sh", "-c", cmd], { store, cwd: dir });
      assertEquals(r1.code, 0, r1.stderr);
      assertIncludes(net.stderr, "step 1 running");
      const [msg, stamp, vars, pwd, deleted] = r1.stdout.split("\n");
      assertEquals([msg, vars, pwd, deleted], ["one", "hi sbx", "/app", "deleted"]);
      // the step wrote into its layer, not into the project
      assert(
        !Deno.statSync(`${dir}/out`).isDirectory ||
          [...Deno.readDirSync(`${dir}/out`)].length === 0,
      );

      const r2 = await hd(["shell", "--", "sh", "-c", cmd], { store, cwd: dir });
      assertEquals(r2.code, 0, r2.stderr);
      assertIncludes(r2.stderr, "step 1 cached");
      assertEquals(r2.stdout.split("\n")[1], stamp, "cached: the same layer");

      Deno.writeTextFileSync(`${dir}/src/msg.txt`, "two\n");
      const r3 = await hd(["shell", "--", "sh", "-c", "cat out/msg.txt /root/.cache/x/runs"], {
        store,
        cwd: dir,
      });
      assertEquals(r3.code, 0, r3.stderr);
      assertIncludes(r3.stderr, "step 1 running");
      // the cache dir kept the first run's line; it is not part of any layer
      assertEquals(r3.stdout, "two\nrun\nrun\n");

      // /etc/motd comes from image layer 2 and again from the step: a conflict
      const c = await hd(["shell", "--conflicts"], { store, cwd: dir });
      assertEquals(c.code, 0, c.stderr);
      assertEquals(c.stdout.trim(), "etc/motd: image layer 2, step 1");

      // exit codes pass through
      const r4 = await hd(["shell", "--", "sh", "-c", "exit 3"], { store, cwd: dir });
      assertEquals(r4.code, 3);
    } finally {
      await teardown(reg, dir);
    }
  },
);

testIf(
  skip,
  "a failing step names itself, its exit code and last lines, and keeps nothing",
  async () => {
    using tmp = tempDir();
    const { reg, ref, store, dir } = await setup(tmp.path);
    project(
      dir,
      ref,
      `  { run = "echo about to fail; echo partial > /opt/partial; exit 4", inputs = ["src"] },`,
    );
    try {
      const r = await hd(["shell", "--", "true"], { store, cwd: dir });
      assertEquals(r.code, 1);
      assertIncludes(r.stderr, "Cannot build step 1");
      assertIncludes(r.stderr, "exited with code 4");
      assertIncludes(r.stderr, "about to fail");
      const builds = [...Deno.readDirSync(`${store}/refs`)].map((e) => e.name);
      assert(!builds.includes("builds"), `no build recorded: ${builds}`);
      const tmpLeft = [...Deno.readDirSync(`${store}/tmp`)].filter((e) =>
        e.name.startsWith("build-")
      );
      assertEquals(tmpLeft.length, 0, "partial upperdir discarded");
    } finally {
      await teardown(reg, dir);
    }
  },
);

testIf(skip, "hardlink fallback: a step's changes are captured from the farm", async () => {
  using tmp = tempDir();
  const { reg, ref, store, dir } = await setup(tmp.path);
  project(dir, ref, STEPS);
  const env = { HD_ROOTFS: "hardlink" };
  try {
    const cmd = "cat out/msg.txt /etc/motd; test -e /var/www/index.html || echo deleted";
    const r1 = await hd(["shell", "--", "sh", "-c", cmd], { store, cwd: dir, env });
    assertEquals(r1.code, 0, r1.stderr);
    assertIncludes(r1.stderr, "hardlink farm");
    assertEquals(r1.stdout, "one\nlayer 2\nstep\ndeleted\n");
    // the layer holds exactly the step's changes: a fresh farm from it shows the same
    Deno.removeSync(`${dir}/.hd/sandbox`, { recursive: true });
    const r2 = await hd(["shell", "--", "sh", "-c", cmd], { store, cwd: dir, env });
    assertIncludes(r2.stderr, "step 1 cached");
    assertEquals(r2.stdout, r1.stdout);
    // and the project was not written to (out/ is only the empty mount point of the layer's out/)
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name).sort(), [
      ".hd",
      "hd.toml",
      "out",
      "src",
    ]);
    assertEquals([...Deno.readDirSync(`${dir}/out`)].length, 0);
  } finally {
    await reg.stop();
  }
});

testIf(skip, "independent steps run side by side; a step on both outputs sees both", async () => {
  using tmp = tempDir();
  const { reg, ref, store, dir } = await setup(tmp.path);
  // a and b each wait for the other to have started (through the shared cache dir): they pass
  // only when they run at the same time
  const meet = (me: string, other: string) =>
    `touch /root/.cache/x/${me}; for i in $(seq 100); do test -e /root/.cache/x/${other} && ` +
    `break; sleep 0.05; done; test -e /root/.cache/x/${other}`;
  project(
    dir,
    ref,
    [
      `{ run = "${
        meet("a", "b")
      } && mkdir -p a && echo A > a/x", inputs = ["src"], outputs = ["a"] },`,
      `{ run = "${
        meet("b", "a")
      } && mkdir -p b && echo B > b/x && ls", inputs = ["src"], outputs = ["b"] },`,
      `{ run = "cat a/x b/x > c.txt", inputs = ["a", "b/x"], outputs = ["c.txt"] },`,
    ].map((l) => `  ${l}`).join("\n"),
  );
  try {
    const r = await hd(["shell", "--", "cat", "c.txt"], { store, cwd: dir });
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.stdout, "A\nB\n");
    // b ran without a's layer below it
    assert(!r.stderr.includes("build | a\n"), r.stderr);
  } finally {
    await teardown(reg, dir);
  }
});

testIf(skip, "what a build killed mid-step left behind is unmounted and removed", async () => {
  using tmp = tempDir();
  const { reg, ref, store, dir } = await setup(tmp.path);
  project(dir, ref, `  { run = "touch /opt/started; sleep 30", inputs = ["src"] },`);
  try {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--quiet", `${REPO}/cli.ts`, "shell", "--", "true"],
      cwd: dir,
      env: { HD_HOME: store, NO_COLOR: "1" },
      stdout: "null",
      stderr: "null",
    }).spawn();
    let left: string[] = [];
    for (let i = 0; i < 200 && left.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
      try {
        left = [...Deno.readDirSync(`${store}/tmp`)].map((e) => e.name).filter((n) =>
          n.startsWith("build-") && isMountPoint(`${store}/tmp/${n}/root`)
        );
      } catch { /* not yet */ }
    }
    assertEquals(left.length, 1, "the step is running");
    child.kill("SIGKILL"); // hd dies; its sandbox goes with it (pdeathsig), its mount stays
    await child.status;
    let alive = true;
    for (let i = 0; i < 100 && alive; i++) {
      await new Promise((r) => setTimeout(r, 20));
      alive = new Deno.Command("sh", {
        args: ["-c", "ps -eo args | grep -v grep | grep -q 'touch /opt/started'"],
      }).outputSync().success;
    }
    assert(!alive, "the step's processes ended with hd");
    assert(isMountPoint(`${store}/tmp/${left[0]}/root`));
    assertEquals(cleanStaleBuilds(`${store}/tmp`), [`${store}/tmp/${left[0]}`]);
    assert(!isMountPoint(`${store}/tmp/${left[0]}/root`));
  } finally {
    await reg.stop();
  }
});

testIf(skip, "an output in a subdirectory keeps the rest of that directory visible", async () => {
  using tmp = tempDir();
  const { reg, ref, store, dir } = await setup(tmp.path);
  project(
    dir,
    ref,
    `  { run = "mkdir -p web/node_modules/m && echo mod > web/node_modules/m/i.js", ` +
      `inputs = ["src"], outputs = ["web/node_modules"] },`,
  );
  Deno.mkdirSync(`${dir}/web/src`, { recursive: true });
  Deno.writeTextFileSync(`${dir}/web/package.json`, "{}\n");
  Deno.writeTextFileSync(`${dir}/web/src/app.js`, "app\n");
  try {
    const cmd = "cat web/package.json web/src/app.js web/node_modules/m/i.js";
    const r = await hd(["shell", "--", "sh", "-c", cmd], { store, cwd: dir });
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.stdout, "{}\napp\nmod\n");
    // an edit of the project's web/ shows through at once (web/ itself is the project's)
    Deno.writeTextFileSync(`${dir}/web/src/app.js`, "app2\n");
    const r2 = await hd(["shell", "--", "cat", "web/src/app.js"], { store, cwd: dir });
    assertEquals(r2.stdout, "app2\n", r2.stderr);
  } finally {
    await teardown(reg, dir);
  }
});

testIf(
  skip,
  "hd status reports the step hashes `hd up` uses with a base (the pulled image's id)",
  async () => {
    using tmp = tempDir();
    const { reg, ref, store, dir } = await setup(tmp.path);
    project(dir, ref, `  { run = "echo x > /opt/x", inputs = ["src"] },`);
    try {
      const before = JSON.parse((await hd(["status", "--json"], { store, cwd: dir })).stdout);
      assertEquals(before.steps[0].cached, false);
      const r = await hd(["shell", "--", "cat", "/opt/x"], { store, cwd: dir });
      assertEquals(r.code, 0, r.stderr);
      const s = await hd(["status", "--json"], { store, cwd: dir });
      assertEquals(s.code, 0, s.stderr);
      const st = JSON.parse(s.stdout);
      assertEquals(st.steps[0].cached, true, "the hash status shows is the one the build recorded");
      assertEquals(st.env.upToDate, true);
      // hd dag show compiles (and records) the same Env: status still says it is up to date
      const show = await hd(["dag", "show", "--json"], { store, cwd: dir });
      assertEquals(show.code, 0, show.stderr);
      const again = JSON.parse((await hd(["status", "--json"], { store, cwd: dir })).stdout);
      assertEquals(again.env.upToDate, true, "dag show recorded the Env hd up uses");
      assertEquals(again.env.id, st.env.id);
    } finally {
      await teardown(reg, dir);
    }
  },
);

testIf(
  skip,
  "hd up's loop runs independent sandbox steps side by side, first and after an edit",
  async () => {
    using tmp = tempDir();
    const { reg, ref } = await busyboxRegistry(tmp.path);
    const dir = `${tmp.path}/proj`;
    // a and b each wait for the other to have started in this round (the round is the content of
    // src/msg.txt; the marker files live in the shared cache dir): they pass only side by side
    const meet = (me: string, other: string) =>
      `r=$(cat src/msg.txt); touch /root/.cache/x/${me}-$r; for i in $(seq 100); do ` +
      `test -e /root/.cache/x/${other}-$r && break; sleep 0.05; done; test -e /root/.cache/x/${other}-$r`;
    project(
      dir,
      ref,
      [
        `{ run = "${
          meet("a", "b")
        } && mkdir -p a && cat src/msg.txt > a/x", inputs = ["src"], outputs = ["a"] },`,
        `{ run = "${
          meet("b", "a")
        } && mkdir -p b && echo B > b/x", inputs = ["src"], outputs = ["b"] },`,
        `{ run = "cat a/x b/x > c.txt", inputs = ["a", "b/x"], outputs = ["c.txt"] },`,
      ].map((l) => `  ${l}`).join("\n"),
    );
    const spec = loadSpec(`${dir}/hd.toml`);
    const store = Store.open(`${tmp.path}/store`, { create: true });
    const out: string[] = [];
    const loop = await DevLoop.open({
      spec,
      store,
      noWatch: true,
      print: (s, l) => out.push(`${s} | ${l}`),
    });
    try {
      await loop.start();
      assertEquals(loop.status().steps.map((s) => s.state), ["ran", "ran", "ran"], out.join("\n"));
      Deno.writeTextFileSync(`${dir}/src/msg.txt`, "two\n");
      const r = await loop.update(["src/msg.txt"]);
      assertEquals(r?.stepsRun, [0, 1, 2], out.join("\n"));
      assertEquals(r?.stepsFailed, []);
      // c ran on both layers: the environment's root holds what it wrote
      const root = `${dir}/.hd/sandbox/root/app`;
      assertEquals(Deno.readTextFileSync(`${root}/c.txt`), "two\nB\n");
    } finally {
      await loop.stop();
      await reg.stop();
      unmountEnv(spec);
    }
  },
);
