/**
 * The OCI runtime configuration (runc's `config.json`) of a sandbox — a pure function of what to
 * run and where, so that the boundary is one readable table: the namespaces, Docker's default
 * capability set, `noNewPrivileges`, a seccomp allowlist, the masked and read-only paths of /proc
 * and /sys, a tmpfs /dev with only runc's default devices (and a devices cgroup that denies every
 * other node, so a block device made with CAP_MKNOD cannot be opened), and the mounts (the project,
 * cache dirs, resolv.conf, CA certificates, overlays, kept paths).
 *
 * PID 1 of the container is tini (Debian's static build, bind-mounted read-only at
 * {@link INIT_PATH}): it forwards SIGTERM/SIGINT/SIGHUP to the command's process group, reaps
 * orphans and exits with the command's code — the command itself never runs as PID 1 (which would
 * ignore SIGTERM without a handler).
 *
 * @example
 * ```ts
 * import { ociConfig } from "./oci_config.ts";
 * declare const root: string, bundle: string;
 * const cfg = ociConfig({ root, argv: ["sh"], env: {}, cwd: "/", binds: [] }, {
 *   init: "/usr/bin/tini-static",
 *   cgroupsPath: "/hd/x",
 * });
 * Deno.writeTextFileSync(`${bundle}/config.json`, JSON.stringify(cfg));
 * ```
 * @module
 */

/** One bind mount into the sandbox. */
export interface BindSpec {
  /** Host path. */
  src: string;
  /** Absolute path inside the sandbox. */
  dst: string;
  readonly?: boolean;
}

/** An overlay mounted inside the sandbox (e.g. the project as the lower of /app in a step). */
export interface OverlaySpec {
  /** Host paths, highest priority first. */
  lowers: string[];
  upper: string;
  work: string;
  /** Absolute path inside the sandbox. */
  dst: string;
}

/** What the container runs and sees (the host side already resolved: see sandbox.ts). */
export interface ContainerSpec {
  /** The assembled root filesystem on the host. */
  root: string;
  argv: string[];
  env: Record<string, string>;
  /** Working directory inside. */
  cwd: string;
  /** Bind mounts, in order (resolv.conf and CA certificates included). */
  binds: BindSpec[];
  hostname?: string;
  /** True: a new network namespace with only `lo` (runc brings it up). */
  netns?: boolean;
  readonlyRoot?: boolean;
  /** Overlays, mounted before the binds. */
  overlays?: OverlaySpec[];
  /**
   * Paths of the root (e.g. /app/node_modules from a build layer) kept visible on top of the bind
   * mounts that would otherwise hide them: each is bound to a stash under /dev before the binds
   * and from there onto itself after them.
   */
  keep?: KeptPath[];
  /** Who the command runs as (default root, 0:0). */
  user?: ProcessUser;
  /** Absolute paths inside that get a fresh tmpfs (after the overlays, before the binds). */
  tmpfs?: string[];
  /** A network namespace to join (a netns mount such as /run/netns/NAME) instead of a new one. */
  netnsPath?: string;
  /**
   * Paths inside hidden by an empty read-only tmpfs, mounted after everything else: the project's
   * `.hd/` below the working directory, so that nothing inside can read hd's state or rewrite the
   * bundles and runc state hd reads back on the host.
   */
  masks?: string[];
}

/** The user of a container's process: uid, primary gid and supplementary groups. */
export interface ProcessUser {
  uid: number;
  gid: number;
  additionalGids?: number[];
}

/** A kept path (see ContainerSpec.keep), its host paths resolved inside the root. */
export interface KeptPath {
  /** Absolute path inside the container. */
  path: string;
  /** Host path of `path` in the root (before any mount). */
  source: string;
  /** Where the stash appears inside (`/dev/.hd-keep-N`). */
  stash: string;
  /** Host path of the stash during runc's mounts (the root's /dev resolved inside the root). */
  stashSource: string;
}

/** Where tini appears inside the container (on the /dev tmpfs: nothing is created in the root). */
export const INIT_PATH = "/dev/.hd-init";

/** Docker's default capability set (no SYS_ADMIN, SYS_MODULE, SYS_RAWIO, SYS_PTRACE, NET_ADMIN…). */
export const CAPABILITIES: readonly string[] = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_FSETID",
  "CAP_FOWNER",
  "CAP_MKNOD",
  "CAP_NET_RAW",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETFCAP",
  "CAP_SETPCAP",
  "CAP_NET_BIND_SERVICE",
  "CAP_SYS_CHROOT",
  "CAP_KILL",
  "CAP_AUDIT_WRITE",
];

/** /proc and /sys paths hidden (bound over by /dev/null or an empty read-only tmpfs), as Docker. */
export const MASKED_PATHS: readonly string[] = [
  "/proc/asound",
  "/proc/acpi",
  "/proc/kcore",
  "/proc/keys",
  "/proc/latency_stats",
  "/proc/timer_list",
  "/proc/timer_stats",
  "/proc/sched_debug",
  "/proc/scsi",
  "/sys/firmware",
  "/sys/devices/virtual/powercap",
];

/** /proc paths made read-only, as Docker. */
export const READONLY_PATHS: readonly string[] = [
  "/proc/bus",
  "/proc/fs",
  "/proc/irq",
  "/proc/sys",
  "/proc/sysrq-trigger",
];

/**
 * System calls allowed unconditionally (x86_64 and i386 names; runc skips names its libseccomp does
 * not know or the architecture lacks, and answers ENOSYS for syscalls newer than the profile). Everything else fails
 * with EPERM. Left out on purpose: mounting and namespaces (mount, umount2, pivot_root, fsopen,
 * fsmount, move_mount, open_tree, mount_setattr, setns, unshare), kernel modules and kexec, bpf,
 * perf_event_open, keyrings (keyctl, add_key, request_key), file handles (open_by_handle_at,
 * name_to_handle_at), ptrace and process_vm_*, kcmp, pidfd_getfd, userfaultfd, io_uring, clock
 * and time setting, reboot, swapon/swapoff, syslog, acct, quotactl, iopl/ioperm, vm86, NUMA
 * policy calls, obsolete calls. clone and personality are allowed only with the arguments below.
 */
export const SECCOMP_ALLOWED: readonly string[] = (
  "_llseek _newselect accept accept4 access adjtimex alarm arch_prctl bind brk cachestat " +
  "capget capset chdir chmod chown chown32 chroot clock_getres clock_getres_time64 " +
  "clock_gettime clock_gettime64 clock_nanosleep clock_nanosleep_time64 close close_range " +
  "connect copy_file_range creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl " +
  "epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve " +
  "execveat exit exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate " +
  "fanotify_mark fchdir fchmod fchmodat fchmodat2 fchown fchown32 fchownat fcntl fcntl64 " +
  "fdatasync fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 " +
  "fstatfs fstatfs64 fsync ftruncate ftruncate64 futex futex_requeue futex_time64 futex_wait " +
  "futex_waitv futex_wake futimesat get_mempolicy get_robust_list get_thread_area getcpu " +
  "getcwd getdents getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups " +
  "getgroups32 getitimer getpeername getpgid getpgrp getpid getppid getpriority getrandom " +
  "getresgid getresgid32 getresuid getresuid32 getrlimit getrusage getsid getsockname " +
  "getsockopt gettid gettimeofday getuid getuid32 getxattr getxattrat inotify_add_watch " +
  "inotify_init inotify_init1 inotify_rm_watch io_cancel io_destroy io_getevents io_pgetevents " +
  "io_pgetevents_time64 io_setup io_submit ioctl ioprio_get ioprio_set ipc kill " +
  "landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown lchown32 lgetxattr " +
  "link linkat listen listmount listxattr listxattrat llistxattr lremovexattr lseek lsetxattr " +
  "lsm_get_self_attr lsm_list_modules lstat lstat64 madvise map_shadow_stack membarrier " +
  "memfd_create mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2 " +
  "modify_ldt mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64 " +
  "mq_timedsend mq_timedsend_time64 mq_unlink mremap mseal msgctl msgget msgrcv msgsnd msync " +
  "munlock munlockall munmap nanosleep newfstatat nice oldfstat oldlstat oldolduname oldstat " +
  "olduname open openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc " +
  "pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2 prlimit64 " +
  "process_madvise process_mrelease pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read " +
  "readahead readdir readlink readlinkat readv recvfrom recvmmsg recvmmsg_time64 recvmsg " +
  "remap_file_pages removexattr removexattrat rename renameat renameat2 restart_syscall rmdir " +
  "rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend " +
  "rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_get_priority_max " +
  "sched_get_priority_min sched_getaffinity sched_getattr sched_getparam sched_getscheduler " +
  "sched_rr_get_interval sched_rr_get_interval_time64 sched_setaffinity sched_setattr " +
  "sched_setparam sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop " +
  "semtimedop_time64 sendfile sendfile64 sendmmsg sendmsg sendto set_robust_list " +
  "set_thread_area set_tid_address setdomainname setfsgid setfsgid32 setfsuid setfsuid32 " +
  "setgid setgid32 setgroups setgroups32 sethostname setitimer setpgid setpriority setregid " +
  "setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32 setrlimit setsid " +
  "setsockopt setuid setuid32 setxattr setxattrat sgetmask shmat shmctl shmdt shmget shutdown " +
  "sigaction sigaltstack signal signalfd signalfd4 sigpending sigprocmask sigreturn sigsuspend " +
  "socket socketcall socketpair splice ssetmask stat stat64 statfs statfs64 statmount statx " +
  "symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time timer_create " +
  "timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64 " +
  "timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64 times " +
  "tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat utime utimensat " +
  "utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev "
).trim().split(/\s+/);

/** clone(2) flags that make namespaces (CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET). */
export const CLONE_NS_FLAGS = 0x7e020000;

/** personality(2) values allowed: PER_LINUX, PER_LINUX32, UNAME26 (and both), and the query. */
export const PERSONALITIES: readonly number[] = [0x0, 0x8, 0x20000, 0x20008, 0xffffffff];

const EPERM = 1;
const ENOSYS = 38;

/** The seccomp section of the config (see {@link SECCOMP_ALLOWED}). */
export function seccompProfile(): Record<string, unknown> {
  return {
    defaultAction: "SCMP_ACT_ERRNO",
    defaultErrnoRet: EPERM,
    // x86_64 only: i386 and x32 system calls are refused outright (compiling the filter for three
    // ABIs cost runc ≈ 60 ms per start on this machine)
    architectures: ["SCMP_ARCH_X86_64"],
    syscalls: [
      { names: [...SECCOMP_ALLOWED], action: "SCMP_ACT_ALLOW" },
      {
        // no namespace flags (the arguments of clone3 cannot be inspected: ENOSYS makes libc
        // fall back to clone, as under Docker)
        names: ["clone"],
        action: "SCMP_ACT_ALLOW",
        args: [{ index: 0, value: CLONE_NS_FLAGS, valueTwo: 0, op: "SCMP_CMP_MASKED_EQ" }],
      },
      { names: ["clone3"], action: "SCMP_ACT_ERRNO", errnoRet: ENOSYS },
      ...PERSONALITIES.map((p) => ({
        names: ["personality"],
        action: "SCMP_ACT_ALLOW",
        args: [{ index: 0, value: p, op: "SCMP_CMP_EQ" }],
      })),
    ],
  };
}

type Mount = { destination: string; type: string; source: string; options: string[] };

/** The mounts of the container, in the order runc makes them. */
export function containerMounts(c: ContainerSpec, init: string): Mount[] {
  const m: Mount[] = [
    { destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"] },
    {
      destination: "/dev",
      type: "tmpfs",
      source: "tmpfs",
      options: ["nosuid", "strictatime", "mode=755", "size=65536k"],
    },
    {
      destination: "/dev/pts",
      type: "devpts",
      source: "devpts",
      options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
    },
    {
      destination: "/dev/shm",
      type: "tmpfs",
      source: "shm",
      options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
    },
    {
      destination: "/dev/mqueue",
      type: "mqueue",
      source: "mqueue",
      options: ["nosuid", "noexec", "nodev"],
    },
    {
      destination: "/sys",
      type: "sysfs",
      source: "sysfs",
      options: ["nosuid", "noexec", "nodev", "ro"],
    },
    {
      destination: "/tmp",
      type: "tmpfs",
      source: "tmpfs",
      options: ["nosuid", "nodev", "mode=1777"],
    },
    {
      destination: INIT_PATH,
      type: "bind",
      source: init,
      options: ["bind", "ro", "nosuid", "nodev"],
    },
  ];
  const keep = c.keep ?? [];
  for (const k of keep) {
    m.push({ destination: k.stash, type: "bind", source: k.source, options: ["rbind"] });
  }
  for (const o of c.overlays ?? []) {
    m.push({
      destination: o.dst,
      type: "overlay",
      source: "overlay",
      options: [`lowerdir=${o.lowers.join(":")}`, `upperdir=${o.upper}`, `workdir=${o.work}`],
    });
  }
  for (const t of c.tmpfs ?? []) {
    m.push({ destination: t, type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev"] });
  }
  for (const b of c.binds) {
    m.push({
      destination: b.dst,
      type: "bind",
      source: b.src,
      options: b.readonly ? ["bind", "ro", "nosuid", "nodev"] : ["rbind", "nosuid", "nodev"],
    });
  }
  // the stash is reached through the root, where runc mounted the /dev tmpfs above
  for (const k of keep) {
    m.push({ destination: k.path, type: "bind", source: k.stashSource, options: ["rbind"] });
  }
  for (const path of c.masks ?? []) {
    m.push({
      destination: path,
      type: "tmpfs",
      source: "tmpfs",
      options: ["ro", "nosuid", "nodev", "noexec", "mode=555", "size=4k"],
    });
  }
  return m;
}

/** Options of {@link ociConfig} that are not about the command. */
export interface RuntimeOptions {
  /** The host path of tini-static. */
  init: string;
  /** cgroup path (v1 controllers and the unified hierarchy), unique per container. */
  cgroupsPath?: string;
  /** Rootless: map the caller's uid/gid to root in a user namespace (hd not running as root). */
  rootless?: { uid: number; gid: number };
}

/** The OCI runtime configuration of container `c` (see the module doc). */
export function ociConfig(c: ContainerSpec, rt: RuntimeOptions): Record<string, unknown> {
  const caps = [...CAPABILITIES];
  const namespaces: { type: string; path?: string }[] = [
    { type: "pid" },
    { type: "ipc" },
    { type: "uts" },
    { type: "mount" },
  ];
  if (c.netnsPath) namespaces.push({ type: "network", path: c.netnsPath });
  else if (c.netns) namespaces.push({ type: "network" });
  if (rt.rootless) namespaces.push({ type: "user" });
  const linux: Record<string, unknown> = {
    namespaces,
    maskedPaths: [...MASKED_PATHS],
    readonlyPaths: [...READONLY_PATHS],
    rootfsPropagation: "rprivate",
    seccomp: seccompProfile(),
  };
  if (rt.rootless) {
    linux.uidMappings = [{ containerID: 0, hostID: rt.rootless.uid, size: 1 }];
    linux.gidMappings = [{ containerID: 0, hostID: rt.rootless.gid, size: 1 }];
  } else {
    // every device node but runc's defaults (null, zero, full, random, urandom, tty, pts, ptmx)
    // is denied: a block device made with CAP_MKNOD cannot be opened
    linux.resources = { devices: [{ allow: false, access: "rwm" }] };
    if (rt.cgroupsPath) linux.cgroupsPath = rt.cgroupsPath;
  }
  return {
    ociVersion: "1.0.2",
    process: {
      terminal: false,
      user: c.user ?? { uid: 0, gid: 0 },
      args: [INIT_PATH, "-g", "--", ...c.argv],
      env: Object.entries(c.env).map(([k, v]) => `${k}=${v}`),
      cwd: c.cwd,
      capabilities: {
        bounding: caps,
        effective: caps,
        permitted: caps,
        inheritable: [],
        ambient: [],
      },
      noNewPrivileges: true,
    },
    root: { path: c.root, readonly: c.readonlyRoot ?? false },
    hostname: c.hostname ?? "hd",
    mounts: containerMounts(c, rt.init),
    linux,
  };
}
