/**
 * e2e of the remote build cache through the CLI: store A runs a step that writes a timestamp
 * into its output and pushes it (`hd up --push-cache`); a fresh store B with a copy of the
 * project (no outputs, no .hd) reuses the result without running the step — B's output holds
 * A's timestamp. Once with a local docker-registry (B finds it by HD_REMOTE_CACHE), once with
 * s3rver (B finds it in hd.toml's [remote]).
 * @module
 */
import { assert, assertEquals } from "../_assert.ts";
import { hd, skipUnless, tempDir, testIf } from "../_helpers.ts";
import { freePort, startRegistry } from "../oci/_fixtures.ts";
import { hostileProxy, type Hostility, startS3 } from "../remote/_fixtures.ts";
import { busyboxRegistry } from "../sandbox/_image.ts";

function project(dir: string): void {
  Deno.mkdirSync(`${dir}/src`, { recursive: true });
  Deno.writeTextFileSync(`${dir}/src/input.txt`, "v1\n");
  Deno.writeTextFileSync(
    `${dir}/hd.toml`,
    `[environment]
name = "remote-e2e"

[build]
steps = [{ run = "mkdir -p out && cat src/input.txt > out/copy && date +%s%N > out/stamp", inputs = ["src"], outputs = ["out"] }]
`,
  );
}

/** B finds the remote by HD_REMOTE_CACHE or by hd.toml's [remote] (A by --cache). */
async function shareThrough(
  root: string,
  cache: string,
  env: Record<string, string>,
  bVia: "env" | "toml",
) {
  const a = { store: `${root}/storeA`, cwd: `${root}/projA`, env };
  const b = {
    store: `${root}/storeB`,
    cwd: `${root}/projB`,
    env: bVia === "env" ? { ...env, HD_REMOTE_CACHE: cache } : env,
  };
  project(a.cwd);
  project(b.cwd);
  if (bVia === "toml") {
    Deno.writeTextFileSync(`${b.cwd}/hd.toml`, `[remote]\ncache = "${cache}"\n`, { append: true });
  }
  try {
    const upA = await hd(["up", "-d", "--push-cache", "--cache", cache], a);
    assertEquals(upA.code, 0, upA.stderr + upA.stdout);
    const logA = Deno.readTextFileSync(`${a.cwd}/.hd/logs/hd.log`);
    assert(logA.includes("step 1 running"), logA);
    assert(logA.includes("pushed step"), logA);
    const stampA = Deno.readTextFileSync(`${a.cwd}/out/stamp`);
    assertEquals((await hd(["down"], a)).code, 0);

    // a second push uploads nothing new
    const again = await hd(["cache", "push", "--cache", cache, "--json"], a);
    assertEquals(again.code, 0, again.stderr);
    const aj = JSON.parse(again.stdout);
    assertEquals(aj.steps[0].uploaded, 0);

    const ls = await hd(["cache", "ls", "--json"], b);
    assertEquals(ls.code, 0, ls.stderr);
    assertEquals(JSON.parse(ls.stdout).steps[0].remote, true);

    const upB = await hd(["up", "-d"], b);
    assertEquals(upB.code, 0, upB.stderr + upB.stdout);
    const logB = Deno.readTextFileSync(`${b.cwd}/.hd/logs/hd.log`);
    assert(logB.includes("step 1 from the remote cache"), logB);
    assert(!logB.includes("step 1 running"), "B did not run the step: " + logB);
    assertEquals(Deno.readTextFileSync(`${b.cwd}/out/stamp`), stampA, "B has A's timestamp");
    assertEquals(Deno.readTextFileSync(`${b.cwd}/out/copy`), "v1\n");
    assertEquals((await hd(["down"], b)).code, 0);
    // hd cache pull prefetches into a third store: its hd up is a local hit, nothing runs
    const c = { store: `${root}/storeC`, cwd: `${root}/projC`, env: b.env };
    project(c.cwd);
    if (bVia === "toml") Deno.copyFileSync(`${b.cwd}/hd.toml`, `${c.cwd}/hd.toml`);
    const pull = await hd(["cache", "pull", "--json"], c);
    assertEquals(pull.code, 0, pull.stderr);
    assertEquals(JSON.parse(pull.stdout).steps[0].state, "pulled");
    assertEquals(Deno.readTextFileSync(`${c.cwd}/out/stamp`), stampA);
    const upC = await hd(["up", "-d"], c);
    assertEquals(upC.code, 0, upC.stderr);
    assert(Deno.readTextFileSync(`${c.cwd}/.hd/logs/hd.log`).includes("step 1 cached"));
    assertEquals((await hd(["down"], c)).code, 0);
    // B's store records the result: the next hd up there is a local hit
    const st = await hd(["status", "--json"], b);
    assertEquals(JSON.parse(st.stdout).steps[0].cached, true, st.stdout);
  } finally {
    await hd(["down"], a);
    await hd(["down"], b);
  }
}

testIf(
  skipUnless({ commands: ["docker-registry"] }),
  "e2e: a step pushed from store A through a docker-registry is reused by a fresh store B",
  async () => {
    using tmp = tempDir();
    const reg = await startRegistry(tmp.path);
    try {
      await shareThrough(tmp.path, `${reg.host}/team/hd-cache`, {}, "env");
    } finally {
      await reg.stop();
    }
  },
);

Deno.test("e2e: the same through s3rver (s3://bucket/prefix)", async () => {
  using tmp = tempDir();
  const s3 = await startS3(tmp.path);
  try {
    await shareThrough(tmp.path, `s3://${s3.bucket}/team`, s3.env, "toml");
  } finally {
    await s3.stop();
  }
});

testIf(
  skipUnless({ commands: ["docker-registry"] }),
  "e2e: a damaged or unreachable remote makes hd up run the step (one warning line)",
  async () => {
    using tmp = tempDir();
    const reg = await startRegistry(tmp.path);
    let mode: Hostility = null;
    const proxy = hostileProxy(reg.host, () => mode, false);
    const a = { store: `${tmp.path}/storeA`, cwd: `${tmp.path}/projA` };
    const b = { store: `${tmp.path}/storeB`, cwd: `${tmp.path}/projB` };
    const c = { store: `${tmp.path}/storeC`, cwd: `${tmp.path}/projC` };
    project(a.cwd);
    project(b.cwd);
    project(c.cwd);
    try {
      // 3 MiB of incompressible output
      Deno.writeTextFileSync(
        `${a.cwd}/hd.toml`,
        Deno.readTextFileSync(`${a.cwd}/hd.toml`).replace(
          "date +%s%N > out/stamp",
          "date +%s%N > out/stamp && head -c 3000000 /dev/urandom > out/big",
        ),
      );
      for (const p of [b, c]) Deno.copyFileSync(`${a.cwd}/hd.toml`, `${p.cwd}/hd.toml`);
      const cache = `${proxy.host}/team/hd-cache`;
      const upA = await hd(["up", "-d", "--push-cache", "--cache", cache], a);
      assertEquals(upA.code, 0, upA.stderr + upA.stdout);
      await hd(["down"], a);
      mode = "flip";
      const upB = await hd(["up", "-d", "--cache", cache], b);
      assertEquals(upB.code, 0, upB.stderr + upB.stdout);
      const logB = Deno.readTextFileSync(`${b.cwd}/.hd/logs/hd.log`);
      assert(/warning: remote cache .*Cannot .*; running the step/.test(logB), logB);
      assert(logB.includes("step 1 running"), logB);
      assert(
        Deno.readTextFileSync(`${b.cwd}/out/stamp`) !==
          Deno.readTextFileSync(`${a.cwd}/out/stamp`),
        "B ran the step itself",
      );
      const upC = await hd(["up", "-d", "--cache", `127.0.0.1:${freePort()}/nobody`], c);
      assertEquals(upC.code, 0, upC.stderr + upC.stdout);
      const logC = Deno.readTextFileSync(`${c.cwd}/.hd/logs/hd.log`);
      assert(/warning: remote cache .*; running the step/.test(logC), logC);
      assert(logC.includes("remote cache off until hd up restarts"), logC);
      assert(logC.includes("step 1 running"), logC);
    } finally {
      for (const p of [a, b, c]) await hd(["down"], p);
      await proxy.close();
      await reg.stop();
    }
  },
);

testIf(
  skipUnless({
    root: true,
    commands: ["runc", "unshare", "setpriv", "docker-registry", "skopeo", "setsid"],
    paths: ["/bin/busybox", "/usr/bin/tini-static"],
  }),
  "e2e sandbox: a step's layer pushed from store A is reused by a fresh store B",
  async () => {
    using tmp = tempDir();
    // one registry holds the base image and the cache
    const { reg, ref } = await busyboxRegistry(tmp.path);
    const cache = `${reg.host}/team/hd-cache`;
    const a = { store: `${tmp.path}/storeA`, cwd: `${tmp.path}/projA` };
    const b = { store: `${tmp.path}/storeB`, cwd: `${tmp.path}/projB` };
    for (const p of [a, b]) {
      Deno.mkdirSync(`${p.cwd}/site`, { recursive: true });
      Deno.writeTextFileSync(`${p.cwd}/site/index.html`, "v1\n");
      Deno.writeTextFileSync(
        `${p.cwd}/hd.toml`,
        `[environment]
name = "remote-sbx"
base = "${ref}"

[build]
steps = [{ run = "mkdir -p gen && cat /proc/sys/kernel/random/uuid > gen/stamp", inputs = ["site"], outputs = ["gen"] }]
`,
      );
    }
    try {
      const upA = await hd(["up", "-d", "--push-cache", "--cache", cache], a);
      assertEquals(upA.code, 0, upA.stderr + upA.stdout);
      const logA = Deno.readTextFileSync(`${a.cwd}/.hd/logs/hd.log`);
      assert(logA.includes("pushed step"), logA + "\n---\n" + upA.stdout + upA.stderr);
      const stampA = (await hd(["exec", "cat", "/app/gen/stamp"], a)).stdout;
      assert(stampA.length > 10, stampA);
      await hd(["down"], a);
      const upB = await hd(["up", "-d", "--cache", cache], b);
      assertEquals(upB.code, 0, upB.stderr + upB.stdout);
      const logB = Deno.readTextFileSync(`${b.cwd}/.hd/logs/hd.log`);
      assert(logB.includes("step 1 from the remote cache"), logB);
      assert(!logB.includes("step 1 running"), logB);
      assertEquals((await hd(["exec", "cat", "/app/gen/stamp"], b)).stdout, stampA);
    } finally {
      for (const p of [a, b]) await hd(["down"], p);
      await reg.stop();
      for (const p of [a, b]) {
        await new Deno.Command("sh", {
          args: ["-c", `umount -l "${p.cwd}/.hd/sandbox/root" 2>/dev/null; true`],
        }).output();
      }
    }
  },
);
