/**
 * The sandbox's init: hd re-executed as PID 1 inside the namespaces `unshare` made (mount, pid,
 * ipc, uts, optionally net). It reads its {@link InitConfig} from `$HD_SANDBOX_INIT` (or the file
 * `$HD_SANDBOX_INIT_FILE`, which services use so that a restart picks up a new root), mounts
 * /proc, a minimal /dev (null zero full random urandom tty, /dev/pts, /dev/shm), /tmp and the
 * requested bind mounts below the root, sets the hostname, chroots, starts the command, forwards
 * SIGINT/SIGTERM/SIGHUP to it, reaps orphans, and exits with the command's exit code (the
 * kernel then kills whatever is left in the pid namespace).
 *
 * Not imported by anything: src/sandbox/sandbox.ts runs it as `deno run … init.ts`.
 *
 * @example
 * ```sh
 * HD_SANDBOX_INIT='{"root":"/r","argv":["sh"],"env":{},"cwd":"/","binds":[]}' \
 *   unshare --mount --pid --fork deno run -A src/sandbox/init.ts
 * ```
 * @module
 */
import { libc, MS } from "./libc.ts";

/** One bind mount into the sandbox. */
export interface BindSpec {
  /** Host path. */
  src: string;
  /** Absolute path inside the sandbox. */
  dst: string;
  readonly?: boolean;
}

/** What the init sets up (passed as JSON in `$HD_SANDBOX_INIT`). */
export interface InitConfig {
  /** The assembled root filesystem on the host. */
  root: string;
  argv: string[];
  env: Record<string, string>;
  /** Working directory inside. */
  cwd: string;
  binds: BindSpec[];
  hostname?: string;
  /** True in a new network namespace: bring `lo` up. */
  netns?: boolean;
  /** Make the root read-only (bind remount) before starting. */
  readonlyRoot?: boolean;
  /** Overlays mounted inside (after the binds), e.g. the project as the lower of /app in a step. */
  overlays?: { lowers: string[]; upper: string; work: string; dst: string }[];
  /**
   * Paths of the root (e.g. /app/node_modules from a build layer) kept visible on top of the bind
   * mounts that would otherwise hide them.
   */
  keep?: string[];
}

const DEVICES = ["null", "zero", "full", "random", "urandom", "tty"];

function ensureDir(p: string) {
  Deno.mkdirSync(p, { recursive: true });
}

function ensureFile(p: string) {
  try {
    Deno.lstatSync(p);
  } catch {
    ensureDir(p.slice(0, p.lastIndexOf("/")) || "/");
    Deno.writeFileSync(p, new Uint8Array(0), { mode: 0o644 });
  }
}

function setup(cfg: InitConfig): void {
  const c = libc();
  const r = cfg.root.replace(/\/+$/, "");
  // the root must be a mount point for the binds below to stay private to this namespace
  c.mount(r, r, null, MS.BIND | MS.REC);
  ensureDir(`${r}/proc`);
  c.mount("proc", `${r}/proc`, "proc", MS.NOSUID | MS.NODEV | MS.NOEXEC);
  ensureDir(`${r}/dev`);
  c.mount("tmpfs", `${r}/dev`, "tmpfs", MS.NOSUID, "mode=755,size=65536k");
  for (const d of DEVICES) {
    Deno.writeFileSync(`${r}/dev/${d}`, new Uint8Array(0), { mode: 0o666 });
    c.mount(`/dev/${d}`, `${r}/dev/${d}`, null, MS.BIND);
  }
  ensureDir(`${r}/dev/pts`);
  c.mount("devpts", `${r}/dev/pts`, "devpts", MS.NOSUID | MS.NOEXEC, "newinstance,ptmxmode=0666");
  Deno.symlinkSync("pts/ptmx", `${r}/dev/ptmx`);
  ensureDir(`${r}/dev/shm`);
  c.mount("shm", `${r}/dev/shm`, "tmpfs", MS.NOSUID | MS.NODEV, "mode=1777");
  Deno.symlinkSync("/proc/self/fd", `${r}/dev/fd`);
  for (const [i, n] of ["stdin", "stdout", "stderr"].entries()) {
    Deno.symlinkSync(`/proc/self/fd/${i}`, `${r}/dev/${n}`);
  }
  ensureDir(`${r}/tmp`);
  c.mount("tmpfs", `${r}/tmp`, "tmpfs", MS.NOSUID | MS.NODEV, "mode=1777");
  const kept: [string, string][] = [];
  for (const [i, p] of (cfg.keep ?? []).entries()) {
    let isDir: boolean;
    try {
      isDir = Deno.statSync(`${r}${p}`).isDirectory;
    } catch {
      continue;
    }
    const stash = `${r}/dev/.hd-keep-${i}`;
    if (isDir) ensureDir(stash);
    else ensureFile(stash);
    c.mount(`${r}${p}`, stash, null, MS.BIND | MS.REC);
    kept.push([stash, p]);
  }
  for (const o of cfg.overlays ?? []) {
    ensureDir(`${r}${o.dst}`);
    c.mount(
      "overlay",
      `${r}${o.dst}`,
      "overlay",
      0,
      `lowerdir=${o.lowers.join(":")},upperdir=${o.upper},workdir=${o.work}`,
    );
  }
  for (const b of cfg.binds) {
    const dst = `${r}${b.dst}`;
    if (Deno.statSync(b.src).isDirectory) ensureDir(dst);
    else ensureFile(dst);
    c.mount(b.src, dst, null, MS.BIND | MS.REC);
    if (b.readonly) c.mount(b.src, dst, null, MS.BIND | MS.REMOUNT | MS.RDONLY | MS.REC);
  }
  for (const [stash, p] of kept) {
    if (Deno.statSync(stash).isDirectory) ensureDir(`${r}${p}`);
    else ensureFile(`${r}${p}`);
    c.mount(stash, `${r}${p}`, null, MS.BIND | MS.REC);
    c.umount(stash, 2);
  }
  if (cfg.readonlyRoot) c.mount(r, r, null, MS.BIND | MS.REMOUNT | MS.RDONLY);
  if (cfg.netns) {
    try {
      new Deno.Command("ip", { args: ["link", "set", "lo", "up"], stdout: "null", stderr: "null" })
        .outputSync();
    } catch { /* no iproute2: loopback stays down */ }
  }
  if (cfg.hostname) c.sethostname(cfg.hostname);
  c.chroot(r);
  c.chdir("/");
}

function childPids(main: number): number[] {
  // zombies whose parent is this init (orphans reparented here), except the main child that
  // Deno itself waits for
  const out: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    const pid = Number(e.name);
    if (!Number.isInteger(pid) || pid === main || pid === 1) continue;
    try {
      const s = Deno.readTextFileSync(`/proc/${pid}/stat`);
      const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
      if (f[0] === "Z" && f[1] === "1") out.push(pid);
    } catch { /* gone */ }
  }
  return out;
}

async function main(): Promise<number> {
  const file = Deno.env.get("HD_SANDBOX_INIT_FILE");
  let raw = Deno.env.get("HD_SANDBOX_INIT");
  if (file) {
    try {
      raw = Deno.readTextFileSync(file);
    } catch (e) {
      console.error(`hd sandbox init: cannot read ${file}: ${(e as Error).message}`);
      return 125;
    }
  }
  if (!raw) {
    console.error("hd sandbox init: no configuration ($HD_SANDBOX_INIT or $HD_SANDBOX_INIT_FILE)");
    return 125;
  }
  const cfg = JSON.parse(raw) as InitConfig;
  try {
    setup(cfg);
  } catch (e) {
    console.error(`hd sandbox: cannot set up the root filesystem: ${(e as Error).message}`);
    return 125;
  }
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(cfg.argv[0], {
      args: cfg.argv.slice(1),
      cwd: cfg.cwd,
      env: cfg.env,
      clearEnv: true,
      stdin: "inherit",
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
  } catch (e) {
    const nf = e instanceof Deno.errors.NotFound;
    console.error(
      `hd sandbox: cannot run ${cfg.argv[0]}: ${nf ? "command not found" : (e as Error).message}`,
    );
    return nf ? 127 : 126;
  }
  const sigs: Deno.Signal[] = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"];
  const fwd = sigs.map((s) => {
    const f = () => {
      try {
        child.kill(s);
      } catch { /* gone */ }
    };
    Deno.addSignalListener(s, f);
    return [s, f] as const;
  });
  const reap = () => {
    for (const pid of childPids(child.pid)) libc().reap(pid);
  };
  Deno.addSignalListener("SIGCHLD", reap);
  const timer = setInterval(reap, 1000);
  const st = await child.status;
  clearInterval(timer);
  Deno.removeSignalListener("SIGCHLD", reap);
  for (const [s, f] of fwd) Deno.removeSignalListener(s, f);
  if (st.signal) {
    const n = { SIGKILL: 9, SIGINT: 2, SIGTERM: 15, SIGHUP: 1, SIGQUIT: 3 }[st.signal as string];
    return 128 + (n ?? 15);
  }
  return st.code;
}

if (import.meta.main) Deno.exit(await main());
