/**
 * A timer that does not load Node's: in Deno 2.9 the global `setTimeout` and `setInterval` are
 * node:timers', and the first call in a process loads that module and what it imports (async
 * hooks, errors, inspect: ~5–8 ms of the main thread, measured on this machine kind), where
 * `AbortSignal.timeout` runs on Deno's own timers (~0.5 ms the first time). On a critical path
 * that sets a timer before anything else has (the `hd up` supervisor, before its first services
 * start), {@link after} keeps that cost off it; the first timer of Node's is then set later, where
 * the main thread would wait anyway.
 *
 * Unlike `setTimeout`, the timer does not keep the process alive: for work that only matters
 * while something else does (a server, a child process).
 *
 * @example
 * ```ts
 * import { after } from "./timer.ts";
 * const t = after(0, () => console.log("next turn of the event loop"));
 * t.cancel(); // it will not run
 * ```
 * @module
 */

/** A timer set by {@link after}. */
export interface Timer {
  /** Keeps `fn` from running (no effect once it ran). */
  cancel(): void;
}

/** Runs `fn` once, `ms` milliseconds from now, on Deno's own timers (see the module doc). */
export function after(ms: number, fn: () => void): Timer {
  let live = true;
  AbortSignal.timeout(Math.max(0, ms)).addEventListener("abort", () => {
    if (live) (live = false, fn());
  }, { once: true });
  return { cancel: () => void (live = false) };
}
