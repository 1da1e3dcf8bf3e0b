/**
 * Healthchecks (compose semantics) and `depends_on` conditions.
 *
 * - {@link healthState}: the decision — what one check result does to a service's health. A
 *   success makes it `healthy`; failures within `start_period` of the start do not count (unless
 *   it was healthy already); `retries` consecutive counted failures make it `unhealthy`. Until the
 *   service is healthy for the first time hd checks often ({@link nextCheckDelay}: every
 *   min(interval, 500 ms)) so that dependents start without waiting a whole interval, but a
 *   failure counts at most once per `interval` then — the time to `unhealthy` is compose's.
 * - {@link runCheck}: the probe. `CMD`/`CMD-SHELL` run inside the service: on the host in its
 *   working directory with its environment; in a container (a process of the service in a pid
 *   namespace below hd's) through `nsenter` into that container's namespaces, root and working
 *   directory, with its environment and user. `nsenter` rather than `runc exec`: hd runs runc in a
 *   pid namespace of its own, so the pid runc's state records is not a pid hd's namespace can
 *   name; the container's host pid is unambiguous. `http` is a GET from hd (2xx/3xx healthy), `tcp`
 *   the quiet own-listener check of readiness.ts. A check running longer than `timeout` is killed
 *   (its whole process group) and fails.
 * - {@link conditionMet}: whether a dependency satisfies a dependent's condition.
 *
 * @example
 * ```ts
 * import { healthState, initialHealth } from "./health.ts";
 * import type { HealthcheckSpec } from "../config/types.ts";
 * declare const spec: HealthcheckSpec;
 * let h = initialHealth(Date.now());
 * h = healthState(h, { ok: true, output: "PONG" }, Date.now(), spec); // healthy
 * ```
 * @module
 */
import type { DependsCondition, HealthcheckSpec } from "../config/types.ts";
import { signalGroup, spawnGroup } from "../sandbox/process.ts";
import { shQuote } from "../sys/shell.ts";
import { listenerOf } from "./readiness.ts";

/** Health of a service with a healthcheck. */
export type HealthStatus = "starting" | "healthy" | "unhealthy";

/** What hd knows about a service's health since its current process started. */
export interface HealthState {
  status: HealthStatus;
  /** Consecutive counted failures. */
  failures: number;
  /** Epoch ms of the start of the service's current process. */
  startedAt: number;
  /** Epoch ms of the last counted failure (or the start), for the once-per-interval rule. */
  countedAt: number;
  /** True once a check succeeded for this process. */
  everHealthy: boolean;
  /** The last line of the last check's output. */
  output: string;
}

/** The outcome of one check. */
export interface CheckResult {
  ok: boolean;
  /** Last line of its output (or why it failed). */
  output: string;
}

/** The health of a service whose process started at `now`. */
export function initialHealth(now: number): HealthState {
  return {
    status: "starting",
    failures: 0,
    startedAt: now,
    countedAt: now,
    everHealthy: false,
    output: "",
  };
}

/** The health after check `result` at `now` (see the module doc). Pure. */
export function healthState(
  prev: HealthState,
  result: CheckResult,
  now: number,
  spec: Pick<HealthcheckSpec, "intervalMs" | "retries" | "startPeriodMs">,
): HealthState {
  if (result.ok) {
    return { ...prev, status: "healthy", failures: 0, everHealthy: true, output: result.output };
  }
  const next = { ...prev, output: result.output };
  if (!prev.everHealthy) {
    // start period: failures do not count
    if (now - prev.startedAt < spec.startPeriodMs) return next;
    // frequent checks before the first success: a failure counts once per interval (counted
    // from the end of the start period, then from the last counted failure)
    const since = Math.max(prev.countedAt, prev.startedAt + spec.startPeriodMs);
    if (now - since < spec.intervalMs) return next;
  }
  const failures = prev.failures + 1;
  return {
    ...next,
    failures,
    countedAt: now,
    status: failures >= spec.retries ? "unhealthy" : prev.status,
  };
}

/** Time until the next check: min(interval, 500 ms) until the first success, then interval. */
export function nextCheckDelay(state: HealthState, spec: Pick<HealthcheckSpec, "intervalMs">) {
  return state.everHealthy ? spec.intervalMs : Math.min(spec.intervalMs, 500);
}

/** A dependency as {@link conditionMet} sees it. */
export interface DepView {
  name: string;
  state: string;
  /** Port readiness (own listener), null without a port. */
  ready: boolean | null;
  /** Health, null without a healthcheck. */
  health: HealthStatus | null;
  lastExitCode: number | null;
}

/** The condition a dependent waits for when `depends_on` is a list: compose's default for hd. */
export function defaultCondition(
  dep: { ready: boolean | null; health: unknown },
): DependsCondition {
  return dep.health !== null || dep.ready !== null ? "healthy" : "started";
}

/** Whether `dep` meets `cond`: met, not yet (wait), or never without a restart (failed, why). */
export type ConditionVerdict = { met: true } | { met: false; failed: string | null };

/** Whether dependency `dep` meets condition `cond` now. Pure. */
export function conditionMet(cond: DependsCondition, dep: DepView): ConditionVerdict {
  const wait = { met: false, failed: null } as const;
  const live = dep.state === "running" || dep.state === "starting";
  switch (cond) {
    case "started":
      return live || (dep.state === "exited" && dep.lastExitCode === 0) ? { met: true } : wait;
    case "healthy":
      if (dep.state !== "running") return wait;
      if (dep.health !== null) return dep.health === "healthy" ? { met: true } : wait;
      return dep.ready === false ? wait : { met: true };
    case "completed_successfully":
      if (dep.state === "exited" || dep.state === "crashed") {
        return dep.lastExitCode === 0 ? { met: true } : {
          met: false,
          failed: `${dep.name} exited with code ${dep.lastExitCode} ` +
            `(depends_on condition completed_successfully)`,
        };
      }
      return wait;
  }
}

/** Where the service runs, for a `CMD` check. */
export interface CheckContext {
  /** Host working directory and environment of the service (the host case). */
  cwd: string;
  env: Record<string, string>;
  /** The service's processes now. */
  pids: readonly number[];
  /**
   * The service runs in a container: a CMD check runs only inside it (never on the host, not even
   * while the container is being created).
   */
  sandboxed?: boolean;
  /** Aborting ends a running check at once (its process group is killed): the service stops. */
  signal?: AbortSignal;
}

function nsPidDepth(pid: number): number {
  try {
    const m = /^NSpid:\s*(.*)$/m.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
    const ids = m ? m[1].trim().split(/\s+/) : [];
    return ids[ids.length - 1] === "1" ? ids.length : 0;
  } catch {
    return 0;
  }
}

/**
 * The host pid of the container among `pids` — the init (pid 1) of the most deeply nested pid
 * namespace, deeper than hd's and than runc's — or null when the service runs on the host.
 */
export function containerInit(pids: readonly number[]): number | null {
  const own = nsPidDepth(Deno.pid) || 1;
  let best: number | null = null, depth = own + 1; // runc's own namespace is one level down
  for (const p of pids) {
    const d = nsPidDepth(p);
    if (d > depth) (best = p, depth = d);
  }
  return best;
}

function readLink(p: string): string | null {
  try {
    return Deno.readLinkSync(p);
  } catch {
    return null;
  }
}

/** The nsenter argv that runs `argv` inside the container whose init is host pid `init`. */
export function nsenterArgv(
  init: number,
  argv: string[],
  as?: { uid: number; gid: number },
): string[] {
  const flags = ["-m", "-u", "-i", "-n", "-p", "-r", "-w"];
  const userns = readLink(`/proc/${init}/ns/user`) !== readLink("/proc/self/ns/user");
  if (userns) flags.push("-U");
  if (as) flags.push("-S", String(as.uid), "-G", String(as.gid));
  else if (!userns) {
    const st = Deno.readTextFileSync(`/proc/${init}/status`);
    const uid = /^Uid:\s+\d+\s+(\d+)/m.exec(st)?.[1];
    const gid = /^Gid:\s+\d+\s+(\d+)/m.exec(st)?.[1];
    if (uid && gid) flags.push("-S", uid, "-G", gid);
  }
  return ["nsenter", "-t", String(init), ...flags, "--", ...argv];
}

/** The sh command line that runs `argv` inside the container whose init is host pid `init`. */
export function nsenterCommand(init: number, argv: string[]): string {
  return ["exec", ...nsenterArgv(init, argv)].map(shQuote).join(" ");
}

function lastLine(s: string): string {
  const lines = s.split("\n").map((l) => l.trim()).filter((l) => l !== "");
  const l = lines[lines.length - 1] ?? "";
  return l.length > 200 ? l.slice(0, 200) + "…" : l;
}

/** The environment of the container whose init is host pid `init` (its configuration's). */
export function containerEnv(init: number): Record<string, string> {
  const out: Record<string, string> = {};
  try {
    for (const kv of Deno.readTextFileSync(`/proc/${init}/environ`).split("\0")) {
      const i = kv.indexOf("=");
      if (i > 0) out[kv.slice(0, i)] = kv.slice(i + 1);
    }
  } catch { /* gone */ }
  return out;
}

async function runCommand(
  argv: string[],
  ctx: CheckContext,
  timeoutMs: number,
): Promise<CheckResult> {
  const init = containerInit(ctx.pids);
  if (init === null && ctx.sandboxed) return { ok: false, output: "its container is not up yet" };
  const command = init === null
    ? `exec ${argv.map(shQuote).join(" ")}`
    : nsenterCommand(init, argv);
  const env = init === null ? ctx.env : containerEnv(init);
  let proc;
  try {
    proc = spawnGroup(command, { cwd: init === null ? ctx.cwd : "/", env });
  } catch (e) {
    return { ok: false, output: `cannot run the check: ${(e as Error).message}` };
  }
  const dec = new TextDecoder();
  const read = async (s: ReadableStream<Uint8Array>) => {
    let out = "";
    for await (const c of s) if (out.length < 65536) out += dec.decode(c, { stream: true });
    return out;
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onAbort = () => {};
  const timedOut = new Promise<"timeout" | "aborted">((r) => {
    timer = setTimeout(() => r("timeout"), timeoutMs);
    onAbort = () => r("aborted");
    ctx.signal?.addEventListener("abort", onAbort);
    if (ctx.signal?.aborted) r("aborted");
  });
  const done = Promise.all([proc.status, read(proc.stdout), read(proc.stderr)]);
  const first = await Promise.race([done, timedOut]);
  clearTimeout(timer);
  ctx.signal?.removeEventListener("abort", onAbort);
  if (first === "timeout" || first === "aborted") {
    signalGroup(proc.pid, "SIGKILL"); // hd started this group just now
    await done.catch(() => {});
    return {
      ok: false,
      output: first === "timeout" ? `timed out after ${timeoutMs} ms` : "stopped",
    };
  }
  const [st, out, err] = first;
  const line = lastLine(out + "\n" + err);
  return st.code === 0
    ? { ok: true, output: line }
    : { ok: false, output: line || `exit code ${st.code}` };
}

/** Runs one check of `spec` for a service in `ctx` (see the module doc). */
export async function runCheck(spec: HealthcheckSpec, ctx: CheckContext): Promise<CheckResult> {
  const p = spec.probe;
  switch (p.kind) {
    case "cmd":
      return await runCommand(p.argv, ctx, spec.timeoutMs);
    case "shell":
      return await runCommand(["sh", "-c", p.script], ctx, spec.timeoutMs);
    case "tcp": {
      const l = listenerOf(p.port, ctx.pids);
      return l
        ? { ok: true, output: `listening on ${l.address}:${p.port}` }
        : { ok: false, output: `not listening on port ${p.port}` };
    }
    case "http": {
      try {
        const timeout = AbortSignal.timeout(spec.timeoutMs);
        const r = await fetch(p.url, {
          redirect: "manual",
          signal: ctx.signal ? AbortSignal.any([timeout, ctx.signal]) : timeout,
        });
        await r.body?.cancel();
        return { ok: r.status >= 200 && r.status < 400, output: `HTTP ${r.status}` };
      } catch (e) {
        const msg = (e as Error).name === "TimeoutError"
          ? `timed out after ${spec.timeoutMs} ms`
          : (e as Error).message;
        return { ok: false, output: lastLine(msg) };
      }
    }
  }
}
