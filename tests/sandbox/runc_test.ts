/**
 * The pure halves of the runc sandbox: which runc states are leftovers to delete (never one hd did
 * not name, never one of a live hd process), container ids, the OCI configuration's boundary
 * (capabilities, seccomp, masked paths, devices, mounts in order), sandbox path checks and path
 * resolution inside a root (real directories with hostile symlinks).
 * @module
 */
import { assert, assertEquals, assertThrows } from "../_assert.ts";
import { tempDir } from "../_helpers.ts";
import {
  containerId,
  leftoverContainers,
  othersRunning,
  parseContainerId,
  serviceContainerId,
} from "../../src/sandbox/runc.ts";
import {
  CAPABILITIES,
  CLONE_NS_FLAGS,
  INIT_PATH,
  MASKED_PATHS,
  ociConfig,
  READONLY_PATHS,
  SECCOMP_ALLOWED,
  seccompProfile,
} from "../../src/sandbox/oci_config.ts";
import { checkSandboxPath, mkdirInRoot, resolveInRoot } from "../../src/sandbox/inroot.ts";

Deno.test("leftover runc states: dead owners only, services only when stopped, others never", () => {
  const alive = new Set([4242]);
  const isAlive = (p: number) => alive.has(p);
  const entries = [
    "hd-0123abcd-step-4242-1", // live hd: keep
    "hd-0123abcd-exec-777-3", // dead hd: delete
    "hd-0123abcd-svc-web", // service: only when stopped
    "someone-elses-container", // not hd's: never
    "hd-0123abcd-exec-1-1", // pid 1 is never an owner: never
    "hd-zzzz-exec-777-3", // malformed tag: never
  ];
  const cases: [boolean, string[]][] = [
    [false, ["hd-0123abcd-exec-777-3"]],
    [true, ["hd-0123abcd-exec-777-3", "hd-0123abcd-svc-web"]],
  ];
  for (const [stopped, want] of cases) {
    assertEquals(leftoverContainers(entries, isAlive, stopped), want, `stopped=${stopped}`);
  }
  assertEquals(othersRunning(entries, "hd-0123abcd-step-4242-1", isAlive), true); // the service
  assertEquals(othersRunning(["hd-0123abcd-exec-777-3"], "x", isAlive), false);
  assertEquals(
    othersRunning(["hd-0123abcd-step-4242-1"], "hd-0123abcd-step-4242-1", isAlive),
    false,
  );
});

Deno.test("container ids name their owner and never collide", () => {
  const a = containerId("/p", "exec");
  const b = containerId("/p", "exec");
  assert(a !== b);
  assertEquals(parseContainerId(a)?.pid, Deno.pid);
  assertEquals(parseContainerId(a)?.kind, "exec");
  const s = serviceContainerId("/proj", "web/1");
  assertEquals(parseContainerId(s), { tag: s.slice(3, 11), kind: "svc", service: "web_1" });
  assert(serviceContainerId("/a", "web") !== serviceContainerId("/b", "web"), "per project");
  assertEquals(parseContainerId("hd-0123abcd-exec-x-1"), null);
});

Deno.test("the OCI config: Docker's capabilities, no new privileges, masked paths, devices", () => {
  const cfg = ociConfig({
    root: "/r",
    argv: ["sh", "-c", "x"],
    env: { A: "1" },
    cwd: "/app",
    binds: [{ src: "/proj", dst: "/app" }, {
      src: "/etc/resolv.conf",
      dst: "/etc/resolv.conf",
      readonly: true,
    }],
    hostname: "h",
    netns: true,
    keep: [{
      path: "/app/nm",
      source: "/r/app/nm",
      stash: "/dev/.hd-keep-0",
      stashSource: "/r/dev/.hd-keep-0",
    }],
  }, { init: "/usr/bin/tini-static", cgroupsPath: "/hd/x" }) as {
    process: Record<string, unknown> & { capabilities: Record<string, string[]> };
    mounts: { destination: string; source: string; options: string[] }[];
    linux: Record<string, unknown>;
  };
  const caps = cfg.process.capabilities;
  assertEquals(caps.bounding.length, 14);
  for (const k of ["bounding", "effective", "permitted"]) assertEquals(caps[k], [...CAPABILITIES]);
  assertEquals(caps.inheritable, []);
  assertEquals(caps.ambient, []);
  for (
    const bad of [
      "CAP_SYS_ADMIN",
      "CAP_SYS_MODULE",
      "CAP_SYS_RAWIO",
      "CAP_SYS_PTRACE",
      "CAP_NET_ADMIN",
      "CAP_DAC_READ_SEARCH",
    ]
  ) {
    assert(!caps.bounding.includes(bad), bad);
  }
  assertEquals(cfg.process.noNewPrivileges, true);
  assertEquals(cfg.process.args, [INIT_PATH, "-g", "--", "sh", "-c", "x"]);
  assertEquals(cfg.linux.maskedPaths, [...MASKED_PATHS]);
  assert(MASKED_PATHS.includes("/proc/kcore") && READONLY_PATHS.includes("/proc/sys"));
  assertEquals(cfg.linux.resources, { devices: [{ allow: false, access: "rwm" }] });
  assertEquals(
    (cfg.linux.namespaces as { type: string }[]).map((n) => n.type).sort(),
    ["ipc", "mount", "network", "pid", "uts"],
  );
  const dests = cfg.mounts.map((m) => m.destination);
  // the stash before the project bind, the kept path after it
  assert(dests.indexOf("/dev/.hd-keep-0") < dests.indexOf("/app"));
  assert(dests.indexOf("/app") < dests.indexOf("/app/nm"));
  assert(dests.indexOf("/dev") < dests.indexOf("/dev/.hd-keep-0"));
  const rc = cfg.mounts.find((m) => m.destination === "/etc/resolv.conf")!;
  assert(rc.options.includes("ro"));
  const app = cfg.mounts.find((m) => m.destination === "/app")!;
  assert(app.options.includes("nodev") && app.options.includes("nosuid"));
  // rootless: a user namespace, no cgroup
  const rl = ociConfig({ root: "/r", argv: ["x"], env: {}, cwd: "/", binds: [] }, {
    init: "/t",
    rootless: { uid: 1000, gid: 1000 },
  }) as { linux: Record<string, unknown> };
  assert((rl.linux.namespaces as { type: string }[]).some((n) => n.type === "user"));
  assertEquals(rl.linux.uidMappings, [{ containerID: 0, hostID: 1000, size: 1 }]);
});

Deno.test("seccomp: an allowlist without mount, namespaces, modules, handles, ptrace", () => {
  const p = seccompProfile() as {
    defaultAction: string;
    syscalls: { names: string[]; action: string; args?: { value: number; op: string }[] }[];
  };
  assertEquals(p.defaultAction, "SCMP_ACT_ERRNO");
  const allowedAlways = new Set(
    p.syscalls.filter((s) => s.action === "SCMP_ACT_ALLOW" && !s.args).flatMap((s) => s.names),
  );
  for (
    const bad of [
      "mount",
      "umount2",
      "pivot_root",
      "kexec_load",
      "kexec_file_load",
      "init_module",
      "finit_module",
      "delete_module",
      "open_by_handle_at",
      "bpf",
      "perf_event_open",
      "keyctl",
      "add_key",
      "request_key",
      "reboot",
      "swapon",
      "swapoff",
      "syslog",
      "acct",
      "settimeofday",
      "clock_settime",
      "setns",
      "unshare",
      "userfaultfd",
      "fsopen",
      "fsmount",
      "move_mount",
      "open_tree",
      "ptrace",
      "clone",
      "clone3",
      "personality",
      "io_uring_setup",
    ]
  ) assert(!allowedAlways.has(bad), `${bad} must not be allowed unconditionally`);
  for (const ok of ["read", "openat", "execve", "mknodat", "chroot", "socket", "statx"]) {
    assert(SECCOMP_ALLOWED.includes(ok), ok);
  }
  const clone = p.syscalls.find((s) => s.names.includes("clone"))!;
  assertEquals(clone.args![0].value, CLONE_NS_FLAGS);
  assertEquals(clone.args![0].op, "SCMP_CMP_MASKED_EQ");
  const pers = p.syscalls.filter((s) => s.names.includes("personality"));
  assertEquals(pers.map((s) => s.args![0].value), [0, 8, 0x20000, 0x20008, 0xffffffff]);
});

Deno.test("sandbox paths: absolute and normalized only", () => {
  for (const ok of ["/app", "/srv/app", "/"]) assertEquals(checkSandboxPath(ok, "w"), ok);
  assertEquals(checkSandboxPath("/app/", "w"), "/app");
  for (const bad of ["/../../tmp/x", "/app/../..", "app", "/a//b", "/a/./b", "/a\0b"]) {
    assertThrows(
      () => checkSandboxPath(bad, "[environment].workdir"),
      /Cannot use \[environment\]\.workdir/,
    );
  }
});

Deno.test("paths resolve inside the root whatever the image's symlinks say", () => {
  using tmp = tempDir();
  const root = `${tmp.path}/root`;
  const outside = `${tmp.path}/outside`;
  Deno.mkdirSync(`${root}/usr/bin`, { recursive: true });
  Deno.mkdirSync(outside);
  Deno.symlinkSync(outside, `${root}/etc`); // absolute: means <root>/<outside> inside
  Deno.symlinkSync("../../../../..", `${root}/app`); // climbs: stops at the root
  Deno.symlinkSync("usr/bin", `${root}/bin`); // an ordinary relative link
  Deno.symlinkSync("/loop2", `${root}/loop1`);
  Deno.symlinkSync("/loop1", `${root}/loop2`);
  const cases: [string, string][] = [
    ["/etc/resolv.conf", `${root}${outside}/resolv.conf`],
    ["/app", root],
    ["/app/x", `${root}/x`],
    ["/bin/sh", `${root}/usr/bin/sh`],
    ["/../../x", `${root}/x`],
  ];
  for (const [p, want] of cases) assertEquals(resolveInRoot(root, p), want, p);
  assertThrows(() => resolveInRoot(root, "/loop1/x"), /too many levels/);
  const made = mkdirInRoot(root, "/etc/sub");
  assertEquals(made, `${root}${outside}/sub`);
  assertEquals([...Deno.readDirSync(outside)], [], "nothing written outside the root");
});
