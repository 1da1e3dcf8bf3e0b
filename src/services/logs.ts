/**
 * Service log lines with their time: the supervisor writes each line of `.hd/logs/<service>.log`
 * as `<ISO time> <line>` ({@link stampLine}); `hd logs` reads them back ({@link parseLogLine}) and
 * interleaves several services in time order ({@link mergeLogs}). Lines without a time (written by
 * an older hd, or `hd.log` which is the supervisor's own output) take the time of the line before
 * them in their file, so their order within a file never changes.
 *
 * @example
 * ```ts
 * import { mergeLogs, parseLogLine, stampLine } from "./logs.ts";
 * const a = [stampLine(1000, "db up")].map(parseLogLine);
 * const b = [stampLine(500, "api up")].map(parseLogLine);
 * mergeLogs([{ source: "db", entries: a }, { source: "api", entries: b }]); // api first
 * ```
 * @module
 */

/** One line of a log, with its time (epoch ms) when it has one. */
export interface LogEntry {
  t: number | null;
  line: string;
}

/** One line of one source in time order. */
export interface MergedLine {
  source: string;
  t: number | null;
  line: string;
}

const STAMP = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) /;

/** The line as the supervisor writes it: its time (ISO 8601, UTC, ms) and the line. */
export function stampLine(now: number, line: string): string {
  return `${new Date(now).toISOString()} ${line}`;
}

/** A log file line split into its time (null when it has none) and its text. */
export function parseLogLine(text: string): LogEntry {
  const m = STAMP.exec(text);
  if (!m) return { t: null, line: text };
  const t = Date.parse(m[1]);
  return Number.isNaN(t) ? { t: null, line: text } : { t, line: text.slice(m[0].length) };
}

/**
 * The lines of several sources in time order: stable (within a source the order is kept; between
 * sources at the same time, the order of `sources`), a line without a time counting as the time of
 * the line before it in its source (or the earliest).
 */
export function mergeLogs(
  sources: readonly { source: string; entries: readonly LogEntry[] }[],
): MergedLine[] {
  const keyed: { key: number; s: number; i: number; out: MergedLine }[] = [];
  sources.forEach((src, s) => {
    let last = -Infinity;
    src.entries.forEach((e, i) => {
      if (e.t !== null && e.t > last) last = e.t;
      // a time that goes back within a file (a clock step) keeps the file's order
      keyed.push({ key: last, s, i, out: { source: src.source, t: e.t, line: e.line } });
    });
  });
  keyed.sort((a, b) => a.key - b.key || a.s - b.s || a.i - b.i);
  return keyed.map((k) => k.out);
}

/** The last `n` entries (all for Infinity; none for 0). */
export function lastEntries<T>(entries: readonly T[], n: number): T[] {
  if (n <= 0) return [];
  return Number.isFinite(n) ? entries.slice(Math.max(0, entries.length - n)) : [...entries];
}
