/**
 * Duration strings of hd.toml: a number and a unit (`ms`, `s`, `m`, `h`), possibly several in a
 * row (`1m30s`). Fractions are allowed (`1.5s`).
 *
 * @example
 * ```ts
 * import { parseDuration } from "./duration.ts";
 * parseDuration("500ms"); // 500
 * parseDuration("1m30s"); // 90000
 * parseDuration("5 sec"); // null
 * ```
 * @module
 */

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const WHOLE = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$/;
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;

/** Milliseconds of a duration string, or null when it is not one. */
export function parseDuration(text: string): number | null {
  const t = text.trim();
  if (!WHOLE.test(t)) return null;
  let ms = 0;
  for (const m of t.matchAll(PART)) ms += Number(m[1]) * UNIT_MS[m[2]];
  return Math.round(ms);
}

/** Formats milliseconds as the shortest duration string (`5s`, `50ms`, `1m30s`). */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0s";
  let out = "";
  let rest = ms;
  for (const [unit, size] of [["h", 3_600_000], ["m", 60_000], ["s", 1000]] as const) {
    if (rest >= size) {
      out += `${Math.floor(rest / size)}${unit}`;
      rest %= size;
    }
  }
  if (rest > 0) out += `${rest}ms`;
  return out;
}

/**
 * The largest value of each duration key of hd.toml, and why. Every duration ends up in a timer,
 * and a timer beyond 2^31-1 ms (24.8 days) fires at once: `restart_grace = "99999999999h"` would
 * have meant no grace at all. The limits are far below that, at what still makes sense:
 * - `restart_grace`: 1 h. `hd down` and every restart wait up to the grace per service; a
 *   process that needs more than an hour to stop is hung, not shutting down.
 * - `debounce`: 1 min. Every edit waits for it before anything is rebuilt; beyond a minute edits
 *   would seem to be ignored.
 * Any other duration key: 1 h.
 */
export const DURATION_LIMITS: Readonly<Record<string, number>> = {
  restart_grace: 3_600_000,
  debounce: 60_000,
};

/** The limit of a duration key that {@link DURATION_LIMITS} does not name. */
export const DEFAULT_DURATION_LIMIT_MS = 3_600_000;

/**
 * Checks `ms` against the limit of duration key `key` (the last part of its path); returns the
 * error message and hint when it is over, else null.
 */
export function durationOverLimit(
  key: string,
  ms: number,
): { message: string; hint: string } | null {
  const max = DURATION_LIMITS[key] ?? DEFAULT_DURATION_LIMIT_MS;
  if (ms <= max) return null;
  return {
    message: `${key} must be at most ${formatDuration(max)}, not ${formatDuration(ms)}`,
    hint: `write ${key} = "${formatDuration(max)}" or less`,
  };
}
