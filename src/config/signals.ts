/**
 * The signals a service may be stopped with (`stop_signal` in hd.toml, compose's `stop_signal`,
 * Dockerfile's STOPSIGNAL): a pure check shared by the parser and `hd ingest`.
 *
 * @example
 * ```ts
 * import { stopSignalName } from "./signals.ts";
 * stopSignalName("int"); // "SIGINT"
 * stopSignalName("SIGSTOP"); // null
 * ```
 * @module
 */

/** Signals a service may name as its `stop_signal` (each ends a process by default or by trap). */
export const STOP_SIGNALS = [
  "SIGTERM",
  "SIGINT",
  "SIGQUIT",
  "SIGHUP",
  "SIGUSR1",
  "SIGUSR2",
  "SIGWINCH",
  "SIGABRT",
  "SIGALRM",
  "SIGKILL",
];

/**
 * The signal `s` names (`SIGINT`, `INT`, any case; compose's forms), or null when it is not one a
 * service may be stopped with (SIGSTOP would leave it stopped, not ended; numbers are refused).
 */
export function stopSignalName(s: string): string | null {
  const u = s.toUpperCase();
  const name = u.startsWith("SIG") ? u : `SIG${u}`;
  return STOP_SIGNALS.includes(name) ? name : null;
}
