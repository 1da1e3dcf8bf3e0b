/**
 * The control socket of a running `hd up`: a unix socket `.hd/control.sock` speaking JSON lines
 * (one request object per line, one response object per line), and the state file `.hd/up.json`
 * that names the supervisor's pid and start time so that a stale state (killed supervisor, pid
 * gone or reused) is detected and cleaned up.
 *
 * @example
 * ```ts
 * import { callControl, readUpState } from "./control.ts";
 * const st = readUpState("/proj");
 * if (st?.alive) console.log(await callControl(st.state.socket, { op: "status" }));
 * ```
 * @module
 */
import { isAlive, procStartTime, signalGroup } from "../sandbox/process.ts";

/** Contents of `.hd/up.json`. */
export interface UpState {
  pid: number;
  /** /proc start time of the supervisor, to detect pid reuse. */
  startTime: number | null;
  socket: string;
  dir: string;
  env: string;
  startedAt: number;
  detached: boolean;
  /** Process groups of running services (for cleanup after a killed supervisor). */
  groups: { service: string; pgid: number; startTime: number | null }[];
}

/** Path of the state file of the project at `dir`. */
export function upStatePath(dir: string): string {
  return `${dir}/.hd/up.json`;
}

/** Path of the control socket of the project at `dir`. */
export function controlSocketPath(dir: string): string {
  return `${dir}/.hd/control.sock`;
}

/** Writes the state file atomically. */
export function writeUpState(dir: string, state: UpState): void {
  Deno.mkdirSync(`${dir}/.hd`, { recursive: true });
  const tmp = `${upStatePath(dir)}.${Deno.pid}.tmp`;
  Deno.writeTextFileSync(tmp, JSON.stringify(state, null, 2));
  Deno.renameSync(tmp, upStatePath(dir));
}

/**
 * Writes the state file only if there is none (atomically, via a hard link): of two `hd up`
 * started at once, one wins. False when another state file is there.
 */
export function claimUpState(dir: string, state: UpState): boolean {
  Deno.mkdirSync(`${dir}/.hd`, { recursive: true });
  const tmp = `${upStatePath(dir)}.${Deno.pid}.claim`;
  Deno.writeTextFileSync(tmp, JSON.stringify(state, null, 2));
  try {
    Deno.linkSync(tmp, upStatePath(dir));
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) return false;
    throw e;
  } finally {
    try {
      Deno.removeSync(tmp);
    } catch { /* gone */ }
  }
}

/** The recorded state and whether its supervisor is still that live process; null when none. */
export function readUpState(dir: string): { state: UpState; alive: boolean } | null {
  let state: UpState;
  try {
    state = JSON.parse(Deno.readTextFileSync(upStatePath(dir)));
  } catch {
    return null;
  }
  return { state, alive: isAlive(state.pid, state.startTime) };
}

/** The state of this process, ready to be written. */
export function selfState(dir: string, env: string, detached: boolean): UpState {
  return {
    pid: Deno.pid,
    startTime: procStartTime(Deno.pid),
    socket: controlSocketPath(dir),
    dir,
    env,
    startedAt: Date.now(),
    detached,
    groups: [],
  };
}

/**
 * Cleans up after a supervisor that is gone: kills the process groups of its services that are
 * still the same processes, removes the state file and socket. Returns the groups killed.
 */
export function cleanupStale(dir: string, state: UpState): string[] {
  const killed: string[] = [];
  for (const g of state.groups) {
    if (isAlive(g.pgid, g.startTime) && signalGroup(g.pgid, "SIGKILL")) killed.push(g.service);
  }
  removeUpState(dir);
  return killed;
}

/** Removes the state file and the control socket. */
export function removeUpState(dir: string): void {
  for (const p of [upStatePath(dir), controlSocketPath(dir)]) {
    try {
      Deno.removeSync(p);
    } catch { /* gone */ }
  }
}

/** A control request. */
export type ControlRequest =
  | { op: "status" }
  | { op: "restart"; services: string[] }
  | { op: "down" }
  | { op: "ping" };

/**
 * Serves the control socket at `path` until the returned closer is called. Each request line is
 * answered by `handler`'s result (or `{error}` when it throws).
 */
export function serveControl(
  path: string,
  handler: (req: ControlRequest) => Promise<unknown>,
): { close(): void } {
  try {
    Deno.removeSync(path);
  } catch { /* none */ }
  const listener = Deno.listen({ transport: "unix", path });
  const enc = new TextEncoder();
  (async () => {
    try {
      for await (const conn of listener) {
        (async () => {
          let buf = "";
          try {
            for await (const chunk of conn.readable.pipeThrough(new TextDecoderStream())) {
              buf += chunk;
              let i;
              while ((i = buf.indexOf("\n")) >= 0) {
                const line = buf.slice(0, i);
                buf = buf.slice(i + 1);
                let res: unknown;
                try {
                  res = await handler(JSON.parse(line));
                } catch (e) {
                  res = { error: (e as Error).message };
                }
                await conn.write(enc.encode(JSON.stringify(res) + "\n"));
              }
            }
          } catch { /* client went away */ }
          try {
            conn.close();
          } catch { /* closed */ }
        })();
      }
    } catch { /* listener closed */ }
  })();
  return {
    close() {
      try {
        listener.close();
      } catch { /* closed */ }
    },
  };
}

/** Sends one request to the control socket at `path`; resolves to the response object. */
export async function callControl(
  path: string,
  req: ControlRequest,
  timeoutMs = 30_000,
): Promise<Record<string, unknown>> {
  const conn = await Deno.connect({ transport: "unix", path });
  const timer = setTimeout(() => {
    try {
      conn.close();
    } catch { /* closed */ }
  }, timeoutMs);
  try {
    await conn.write(new TextEncoder().encode(JSON.stringify(req) + "\n"));
    let buf = "";
    for await (const chunk of conn.readable.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      const i = buf.indexOf("\n");
      if (i >= 0) return JSON.parse(buf.slice(0, i));
    }
    throw new Error("the supervisor closed the connection without answering");
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* closed */ }
  }
}
