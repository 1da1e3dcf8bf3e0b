/**
 * `hd logs [SERVICE…] [-f] [--tail N] [-t]`: prints the logs of the services of this project
 * (`.hd/logs/<svc>.log`, written by `hd up` in the foreground and in the background), several
 * services interleaved in time order (each line carries its time: src/services/logs.ts), each line
 * prefixed by its service when several are shown; `-t` shows the times; `--tail N` (or `-n N`)
 * starts from the last N lines of each log; `-f` keeps following until interrupted or until the
 * environment stops (`hd down`). With `--json`, one JSON object per line.
 *
 * @example
 * ```sh
 * hd logs api -f
 * hd logs --tail 20 -t
 * ```
 * @module
 */
import { HdError } from "../sys/errors.ts";
import { loadProjectSpec } from "../config/parse.ts";
import { didYouMean } from "../config/suggest.ts";
import { readUpState } from "../services/control.ts";
import { openFileBeneath } from "../sys/nofollow.ts";
import {
  lastEntries,
  type LogEntry,
  type MergedLine,
  mergeLogs,
  parseLogLine,
} from "../services/logs.ts";
import type { Command } from "./command.ts";

const enc = new TextEncoder();

/** Reads what was appended to a log file since the last call: complete lines only. */
class LogFollower {
  #off = 0;
  #partial = "";
  constructor(readonly path: string) {}

  read(): LogEntry[] {
    // hd writes these files itself, never through a link: a cloned project that ships
    // `.hd/logs/api.log` as a link to a host file (~/.aws/credentials) must not have `hd logs`
    // print it (into a CI log, say); a FIFO is not waited on
    const k = this.path.lastIndexOf("/");
    let f: Deno.FsFile | null;
    try {
      f = openFileBeneath(this.path.slice(0, k), this.path.slice(k + 1));
    } catch (e) {
      throw new HdError(
        `Cannot read ${this.path}: ${(e as Error).message}`,
        "hd writes its logs there itself; remove that file (a project may have shipped it)",
      );
    }
    if (f === null) return [];
    let size = 0;
    try {
      size = f.statSync().size;
    } catch {
      f.close();
      return [];
    }
    if (size < this.#off) (this.#off = 0, this.#partial = ""); // rotated or truncated
    if (size <= this.#off) {
      f.close();
      return [];
    }
    try {
      f.seekSync(this.#off, Deno.SeekMode.Start);
      const buf = new Uint8Array(size - this.#off);
      let got = 0;
      while (got < buf.length) {
        const r = f.readSync(buf.subarray(got));
        if (r === null || r === 0) break;
        got += r;
      }
      this.#off += got;
      const lines = (this.#partial + new TextDecoder().decode(buf.subarray(0, got))).split("\n");
      this.#partial = lines.pop() ?? "";
      return lines.map(parseLogLine);
    } finally {
      f.close();
    }
  }
}

/** `hd logs`. */
export const logs: Command = {
  name: "logs",
  summary: "show (and follow) the output of services, interleaved in time order",
  usage: "hd logs [SERVICE…] [-f] [--tail N] [-t] [--file hd.toml]",
  options: {
    follow: {
      type: "boolean",
      short: "f",
      help: "keep printing new lines (until Ctrl-C or `hd down`)",
    },
    tail: { type: "string", help: "start from the last N lines of each log" },
    lines: { type: "string", short: "n", help: "the same as --tail" },
    timestamps: { type: "boolean", short: "t", help: "show the time of each line" },
    file: { type: "string", help: "the hd.toml to use (default: found from the cwd)" },
  },
  async run(ctx) {
    const spec = loadProjectSpec(typeof ctx.values.file === "string" ? ctx.values.file : undefined);
    const all = [...Object.keys(spec.services), "build", "hd"];
    for (const n of ctx.positionals) {
      if (!all.includes(n)) {
        const g = didYouMean(n, all);
        throw new HdError(
          `Cannot show logs of "${n}": no such service in ${spec.file}`,
          g ? `did you mean "${g}"?` : `services: ${Object.keys(spec.services).join(", ")}`,
          2,
        );
      }
    }
    const names = ctx.positionals.length ? ctx.positionals : Object.keys(spec.services);
    const raw = ctx.values.tail ?? ctx.values.lines;
    const n = typeof raw === "string" ? (raw === "all" ? Infinity : Number(raw)) : Infinity;
    if (Number.isNaN(n) || n < 0 || (Number.isFinite(n) && !Number.isInteger(n))) {
      throw new HdError(
        `Cannot show logs: --tail needs a number of lines, not "${raw}"`,
        "e.g. hd logs --tail 50",
        2,
      );
    }
    const width = Math.max(...names.map((x) => x.length));
    const prefix = names.length > 1;
    const stamps = !!ctx.values.timestamps;
    const emit = (m: MergedLine) => {
      let text: string;
      if (ctx.out.json) {
        text = JSON.stringify({
          service: m.source,
          ...(m.t !== null ? { time: new Date(m.t).toISOString() } : {}),
          line: m.line,
        });
      } else {
        const time = stamps
          ? `${m.t !== null ? new Date(m.t).toISOString() : "-".repeat(24)} `
          : "";
        text = (prefix ? `${m.source.padEnd(width)} | ` : "") + time + m.line;
      }
      try {
        Deno.stdout.writeSync(enc.encode(text + "\n"));
      } catch { /* nobody reads (hd logs | head) */ }
    };
    const followers = names.map((svc) => new LogFollower(`${spec.dir}/.hd/logs/${svc}.log`));
    const first = followers.map((f, i) => ({
      source: names[i],
      entries: lastEntries(f.read(), n),
    }));
    for (const m of mergeLogs(first)) emit(m);
    // nothing running: nothing more will be written (as `docker compose logs -f`)
    if (!ctx.values.follow || readUpState(spec.dir)?.alive !== true) return 0;
    let stop = false;
    const onSig = () => stop = true;
    Deno.addSignalListener("SIGINT", onSig);
    try {
      // follows while the environment runs: `hd down` ends it (after its last lines)
      while (!stop) {
        await new Promise((r) => setTimeout(r, 100));
        const alive = readUpState(spec.dir)?.alive === true;
        const batch = followers.map((f, i) => ({ source: names[i], entries: f.read() }));
        for (const m of mergeLogs(batch)) emit(m);
        if (!alive) break;
      }
    } finally {
      Deno.removeSignalListener("SIGINT", onSig);
    }
    return 0;
  },
};
