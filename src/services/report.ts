/**
 * The services section of `hd status`: asks the running `hd up` of a project over its control
 * socket, detects and cleans up a stale state (supervisor killed: pid gone or reused), and formats
 * the answer as a table.
 *
 * @example
 * ```ts
 * import { formatServices, gatherServices } from "./report.ts";
 * const s = await gatherServices("/proj");
 * console.log(s.running ? formatServices(s.services) : "no services running");
 * ```
 * @module
 */
import {
  callControl,
  cleanupStale,
  controlSocketPath,
  readUpState,
  removeUpState,
  upLockHeld,
} from "./control.ts";
import type { LoopStatus } from "./loop.ts";
import type { ServiceStatus } from "./supervisor.ts";

/** The state of `hd up` for a project. */
export type UpStatus =
  | {
    running: false;
    /** Set when a stale state was found and cleaned up. */
    stale?: StaleCleanup;
    /** Set when `.hd/up.json` is not a state hd wrote: why (it was ignored, not acted on). */
    invalid?: string;
  }
  | ({ running: true; pid: number; detached: boolean; phase: string } & LoopStatus);

/** What cleaning up after a supervisor that is gone did. */
export interface StaleCleanup {
  pid: number;
  /** Services whose leftover process group was killed. */
  killedServices: string[];
  /** Services whose recorded group was left alone: not provably what hd started. */
  left: { service: string; why: string }[];
}

/**
 * Asks the supervisor of the project at `dir`; cleans up a stale state. A state file that is not
 * one hd wrote is reported and ignored (nothing in it is acted on).
 */
export async function gatherServices(dir: string): Promise<UpStatus> {
  const st = readUpState(dir);
  if (st === null) return { running: false };
  if (st.invalid !== undefined) return { running: false, invalid: st.invalid };
  if (!st.alive) {
    const c = cleanupStale(dir, st.state);
    return { running: false, stale: { pid: st.state.pid, killedServices: c.killed, left: c.left } };
  }
  try {
    const res = await callControl(controlSocketPath(dir), { op: "status" }, 10_000);
    return {
      running: true,
      pid: st.state.pid,
      detached: st.state.detached,
      ...(res as unknown as LoopStatus & { phase: string }),
    };
  } catch {
    // alive but not answering: starting up (socket not yet there) or wedged
    return {
      running: true,
      pid: st.state.pid,
      detached: st.state.detached,
      phase: "starting",
      env: st.state.env,
      dir,
      root: "",
      files: "",
      steps: [],
      services: [],
      updates: 0,
      lastUpdate: null,
      watching: false,
    };
  }
}

/**
 * Cleans up after a supervisor that is gone, if any: the stale state (with the leftover groups it
 * can prove are hd's), or an invalid state file (removed without acting on it). Null when there
 * was nothing to clean.
 */
export function cleanupIfStale(
  dir: string,
): (StaleCleanup & { invalid?: undefined }) | { invalid: string } | null {
  const st = readUpState(dir);
  if (st === null || st.alive) return null;
  if (st.invalid !== undefined) {
    // a running `hd up` (it holds the lock) still owns its socket: leave both for it to answer
    if (!upLockHeld(dir)) removeUpState(dir);
    return { invalid: st.invalid };
  }
  const c = cleanupStale(dir, st.state);
  return { pid: st.state.pid, killedServices: c.killed, left: c.left };
}

/** One line about what {@link cleanupIfStale} did, for `hd up` and `hd down`. */
export function formatCleanup(c: StaleCleanup | { invalid: string }): string {
  if ("invalid" in c) return `ignored and removed a state file hd did not write: ${c.invalid}`;
  return `cleaned up the state of a supervisor that is gone (pid ${c.pid})` +
    (c.killedServices.length ? `; killed ${c.killedServices.join(", ")}` : "") +
    (c.left.length
      ? `; left alone ${c.left.map((l) => `${l.service} (${l.why})`).join(", ")}`
      : "");
}

/**
 * True when `hd up -d` may stop waiting for the services: each is running and ready, or has
 * settled in a state that will not change by itself — crashed, exited, stopped, or waiting for a
 * dependency that is (transitively) one of those.
 *
 * @example
 * ```ts
 * import { servicesSettled } from "./report.ts";
 * servicesSettled([
 *   { name: "db", state: "crashed", ready: null, waitingFor: [] },
 *   { name: "api", state: "waiting", ready: false, waitingFor: ["db"] },
 * ]); // true: api waits for a service that crashed
 * ```
 */
export function servicesSettled(
  services: readonly (
    & Pick<ServiceStatus, "name" | "state" | "ready" | "waitingFor">
    & Partial<Pick<ServiceStatus, "health">>
  )[],
): boolean {
  const by = new Map(services.map((x) => [x.name, x]));
  const over = (state: string) =>
    state === "crashed" || state === "exited" || state === "stopped" || state === "failed";
  const blockedForGood = (name: string, seen = new Set<string>()): boolean => {
    const x = by.get(name);
    if (!x || seen.has(name)) return true;
    seen.add(name);
    if (over(x.state)) return true;
    if (x.state === "waiting") return x.waitingFor.some((d) => blockedForGood(d, seen));
    return false;
  };
  return services.every((x) =>
    (x.state === "running" && x.ready !== false && x.health !== "starting") || over(x.state) ||
    (x.state === "waiting" && x.waitingFor.some((d) => blockedForGood(d)))
  );
}

/** What {@link waitVerdict} reads of a service. */
export type WaitInput =
  & Pick<
    ServiceStatus,
    | "name"
    | "state"
    | "ready"
    | "waitingFor"
    | "lastExitCode"
    | "health"
    | "healthOutput"
    | "reason"
  >
  & { uptimeMs?: number | null };

/** What `hd up -d --wait` makes of the services now. */
export interface WaitVerdict {
  /** Every started service is healthy (or ready, or completed): success. */
  ok: boolean;
  /** Services that failed for good (crash loop, non-zero exit, unhealthy, a failed condition). */
  failed: { name: string; why: string }[];
  /** Services still on their way: their state (and health, with its last output). */
  pending: { name: string; state: string }[];
}

/**
 * The decision of `hd up -d --wait` (pure): ok when every service that was started is running and
 * ready and not `starting`/`unhealthy` by its healthcheck, or exited 0 (a completed one-shot); a
 * service with neither a port nor a healthcheck counts once it has run `settleMs` (a command that
 * fails at once must not pass for up);
 * failed as soon as one crashed, exited non-zero, is unhealthy, could not start (`failed`), or
 * waits for a service that failed. Services never started (`stopped`) do not count.
 *
 * @example
 * ```ts
 * import { waitVerdict } from "./report.ts";
 * declare const services: Parameters<typeof waitVerdict>[0];
 * const v = waitVerdict(services);
 * if (v.failed.length) console.log(v.failed.map((f) => `${f.name}: ${f.why}`).join("\n"));
 * ```
 */
export function waitVerdict(
  services: readonly WaitInput[],
  settleMs = 1000,
): WaitVerdict {
  const by = new Map(services.map((x) => [x.name, x]));
  const why = (x: WaitInput): string | null => {
    if (x.state === "crashed") return `crashed (exit code ${x.lastExitCode}, crash loop)`;
    if (x.state === "exited" && x.lastExitCode !== 0) return `exited with code ${x.lastExitCode}`;
    if (x.state === "failed") return `not started: ${x.reason ?? "a dependency failed"}`;
    if (x.state === "running" && x.health === "unhealthy") {
      return `unhealthy${x.healthOutput ? `: ${x.healthOutput}` : ""}`;
    }
    return null;
  };
  const failed: WaitVerdict["failed"] = [];
  const pending: WaitVerdict["pending"] = [];
  for (const x of services) {
    if (x.state === "stopped") continue;
    const w = why(x);
    if (w) {
      failed.push({ name: x.name, why: w });
      continue;
    }
    const bare = x.ready === null && x.health === null; // nothing says it works but running
    const done = (x.state === "running" && x.ready !== false && x.health !== "starting" &&
      (!bare || (x.uptimeMs ?? 0) >= settleMs)) ||
      (x.state === "exited" && x.lastExitCode === 0);
    if (done) continue;
    const dead = x.state === "waiting"
      ? x.waitingFor.find((d) => {
        const dep = by.get(d);
        return dep && (why(dep) !== null || dep.state === "stopped");
      })
      : undefined;
    if (dead) failed.push({ name: x.name, why: `waiting for ${dead}, which is not coming up` });
    else {
      const health = x.health ? `, ${x.health}${x.healthOutput ? `: ${x.healthOutput}` : ""}` : "";
      const waiting = x.state === "waiting" ? ` for ${x.waitingFor.join(", ")}` : "";
      pending.push({ name: x.name, state: x.state + waiting + health });
    }
  }
  return { ok: failed.length === 0 && pending.length === 0, failed, pending };
}

/** Formats a duration in ms as "4s", "3m12s", "2h05m". */
export function formatUptime(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, "0")}m`;
}

/** A plain-text table of services: name, state, pid, restarts, uptime, port readiness. */
export function formatServices(services: ServiceStatus[]): string {
  if (services.length === 0) return "  (no services)";
  const withHealth = services.some((s) => s.health || s.healthOutput || s.reason);
  const withExpose = services.some((s) => s.expose?.length);
  const rows = services.map((s) => [
    s.name,
    (s.inactive
      ? `inactive (profile${s.inactive.length === 1 ? "" : "s"} ${s.inactive.join(", ")})`
      : s.state) +
    (s.waitingFor.length ? ` (for ${s.waitingFor.join(", ")})` : "") +
    ((s.state === "exited" || s.state === "crashed") && s.lastExitCode !== null
      ? ` (exit ${s.lastExitCode})`
      : ""),
    s.pid === null ? "-" : String(s.pid),
    String(s.restarts),
    s.uptimeMs === null ? "-" : formatUptime(s.uptimeMs),
    s.port === null ? "-" : `${s.port} ${s.ready ? "ready" : "not ready"}`,
    ...(withExpose ? [s.expose?.length ? s.expose.join(", ") : "-"] : []),
    ...(withHealth ? [healthCell(s)] : []),
  ]);
  const head = [
    "SERVICE",
    "STATE",
    "PID",
    "RESTARTS",
    "UPTIME",
    "PORT",
    ...(withExpose ? ["EXPOSE"] : []),
    ...(withHealth ? ["HEALTH"] : []),
  ];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const fmt = (r: string[]) => "  " + r.map((c, i) => c.padEnd(w[i])).join("  ").trimEnd();
  return [fmt(head), ...rows.map(fmt)].join("\n");
}

/** The HEALTH cell: the health and the last line of the last check (or why it failed to start). */
function healthCell(s: ServiceStatus): string {
  const cut = (t: string) => t.length > 60 ? t.slice(0, 59) + "…" : t;
  if (s.reason) return cut(s.reason);
  if (!s.health) return "-";
  return s.healthOutput ? `${s.health}: ${cut(s.healthOutput)}` : s.health;
}

/** The services section of `hd status` as text. */
export function formatUpStatus(up: UpStatus): string {
  if (!up.running) {
    const stale = up.stale ? ` (${formatCleanup(up.stale)})` : "";
    const invalid = up.invalid ? `\n  ignored: ${up.invalid}` : "";
    return `services  not running${stale} — \`hd up\` starts them${invalid}`;
  }
  const lines = [
    `services  ${up.phase} under ${up.detached ? "supervisor" : "foreground hd up"} pid ${up.pid}` +
    (up.root ? `, root ${up.root.slice(0, 12)}` : "") +
    `, ${up.updates} update${up.updates === 1 ? "" : "s"}`,
    formatServices(up.services),
  ];
  return lines.join("\n");
}
