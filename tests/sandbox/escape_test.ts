/**
 * The sandbox holds against an escape probe (tests/sandbox/escape_probe.c, built here with
 * `gcc -static`): the chroot escape, mount, remounts, a block device of the host's root disk made
 * with mknod, open_by_handle_at, /proc/kcore, init_module/finit_module, unshare — in a sandboxed
 * build step and through `hd exec`, on a busybox image pulled from a docker-registry on 127.0.0.1.
 * Each attempt must fail and the marker files the probe tries to write into a host directory (the
 * test's own) must be absent.
 * @module
 */
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { hd, REPO, skipUnless, tempDir, testIf } from "../_helpers.ts";
import { busyboxRegistry } from "./_image.ts";
import { releaseEnvMount } from "../../src/runtime/sandbox_steps.ts";
import { loadSpec } from "../../src/config/parse.ts";

const skip = skipUnless({
  root: true,
  commands: ["gcc", "runc", "unshare", "setpriv", "docker-registry", "skopeo"],
  paths: ["/bin/busybox", "/usr/bin/tini-static"],
});

/** major:minor of the filesystem holding the host's / (its disk, for the mknod attempt). */
function rootDevice(): [number, number] {
  for (const line of Deno.readTextFileSync("/proc/self/mountinfo").split("\n")) {
    const f = line.split(" ");
    if (f[4] === "/") {
      const [maj, min] = f[2].split(":").map(Number);
      return [maj, min];
    }
  }
  throw new Error("no / in mountinfo");
}

async function buildProbe(out: string): Promise<void> {
  const r = await new Deno.Command("gcc", {
    args: ["-static", "-O1", "-o", out, `${REPO}/tests/sandbox/escape_probe.c`],
    stderr: "piped",
  }).output();
  if (!r.success) throw new Error(`gcc: ${new TextDecoder().decode(r.stderr)}`);
}

function checkReport(report: string, where: string): void {
  const lines = report.trim().split("\n");
  assert(lines.length >= 15, `${where}: the probe ran every attempt:\n${report}`);
  assert(!report.includes("ESCAPED"), `${where}: an attempt got through:\n${report}`);
  for (
    const what of [
      "chroot escape: marker written on the host",
      "mount tmpfs",
      "remount / read-write",
      "read the host's root disk through mknod",
      "open_by_handle_at",
      "read /proc/kcore",
      "init_module",
    ]
  ) assertIncludes(report, `${what}: blocked`);
  assertIncludes(report, "escaped: 0");
}

testIf(skip, "escape probe: every attempt fails in a build step and in hd exec", async () => {
  using tmp = tempDir();
  const { reg, ref } = await busyboxRegistry(tmp.path);
  const store = `${tmp.path}/store`;
  const dir = `${tmp.path}/proj`;
  const host = `${tmp.path}/host-target`; // the host dir the probe tries to reach
  Deno.mkdirSync(dir);
  Deno.mkdirSync(host);
  await buildProbe(`${dir}/probe`);
  const [maj, min] = rootDevice();
  const args = `${host} ${maj} ${min}`;
  Deno.writeTextFileSync(
    `${dir}/hd.toml`,
    `[environment]
name = "escape"
base = "${ref}"

[build]
steps = [{ run = "mkdir -p out && ./probe ${args} > out/step.txt 2>&1; echo exit=$? >> out/step.txt", inputs = ["probe"], outputs = ["out"] }]
`,
  );
  try {
    const step = await hd(["exec", "cat", "/app/out/step.txt"], { store, cwd: dir });
    assertEquals(step.code, 0, step.stderr);
    checkReport(step.stdout, "build step");
    assertIncludes(step.stdout, "exit=0");
    const ex = await hd(["exec", "/app/probe", host, String(maj), String(min)], {
      store,
      cwd: dir,
    });
    checkReport(ex.stdout, "hd exec");
    assertEquals(ex.code, 0, `the probe's exit code passes through: ${ex.stdout}${ex.stderr}`);
    assertEquals([...Deno.readDirSync(host)].map((e) => e.name), [], "nothing on the host");
  } finally {
    await reg.stop();
    releaseEnvMount(loadSpec(`${dir}/hd.toml`));
  }
});
