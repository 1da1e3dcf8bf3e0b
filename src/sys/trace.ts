/**
 * Timestamps on hd's critical paths, off by default: with `HD_TRACE=/path/file` each call of
 * {@link trace} appends one line `<epoch ms> <pid> <label>` to that file (the CLI and the detached
 * supervisor it starts write to the same file, so their lines sort into one timeline). The epoch
 * time is `performance.timeOrigin + performance.now()`, so a process's first line can be set
 * beside its own start (`trace("start", 0)` writes the time origin itself).
 *
 * @example
 * ```ts
 * import { trace } from "./trace.ts";
 * trace("spec loaded"); // nothing unless HD_TRACE is set
 * ```
 * @module
 */

let path: string | null | undefined;

function target(): string | null {
  if (path === undefined) {
    try {
      path = Deno.env.get("HD_TRACE") || null;
    } catch {
      path = null; // no env permission
    }
  }
  return path;
}

/** True when tracing is on (HD_TRACE is set). */
export function tracing(): boolean {
  return target() !== null;
}

/**
 * Appends `<epoch ms> <pid> <label>` to `$HD_TRACE` when it is set; `at` is a
 * `performance.now()` value (default now). Never throws.
 */
export function trace(label: string, at = performance.now()): void {
  const p = target();
  if (p === null) return;
  const t = (performance.timeOrigin + at).toFixed(1);
  try {
    Deno.writeTextFileSync(p, `${t} ${Deno.pid} ${label}\n`, { append: true });
  } catch { /* tracing must not break the command */ }
}
