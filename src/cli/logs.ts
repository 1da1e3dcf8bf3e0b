/**
 * `hd logs [SERVICE] [-f]`: prints the logs of the services of this project (`.hd/logs/<svc>.log`,
 * written by `hd up` in the foreground and in the background), each line prefixed by its service
 * when several are shown; `-f` keeps following. With `--json`, one JSON object per line.
 *
 * @example
 * ```sh
 * hd logs api -f
 * ```
 * @module
 */
import { HdError } from "../sys/errors.ts";
import { loadProjectSpec } from "../config/parse.ts";
import { didYouMean } from "../config/suggest.ts";
import type { Command } from "./command.ts";

const enc = new TextEncoder();

/** `hd logs`. */
export const logs: Command = {
  name: "logs",
  summary: "show (and follow) the output of services",
  usage: "hd logs [SERVICE…] [-f] [-n LINES] [--file hd.toml]",
  options: {
    follow: { type: "boolean", short: "f", help: "keep printing new lines" },
    lines: { type: "string", short: "n", help: "only the last LINES lines of each log" },
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
    const n = typeof ctx.values.lines === "string" ? Number(ctx.values.lines) : Infinity;
    if (Number.isNaN(n) || n < 0) {
      throw new HdError(`Cannot show logs: -n needs a number, not "${ctx.values.lines}"`, "", 2);
    }
    const width = Math.max(...names.map((x) => x.length));
    const prefix = names.length > 1;
    const emit = (svc: string, line: string) => {
      if (ctx.out.json) {
        Deno.stdout.writeSync(enc.encode(JSON.stringify({ service: svc, line }) + "\n"));
      } else {
        Deno.stdout.writeSync(enc.encode((prefix ? `${svc.padEnd(width)} | ` : "") + line + "\n"));
      }
    };
    const path = (svc: string) => `${spec.dir}/.hd/logs/${svc}.log`;
    const offsets = new Map<string, number>();
    const partial = new Map<string, string>();
    for (const svc of names) {
      let data: Uint8Array;
      try {
        data = Deno.readFileSync(path(svc));
      } catch {
        offsets.set(svc, 0);
        continue;
      }
      offsets.set(svc, data.length);
      const text = new TextDecoder().decode(data);
      const lines = text.split("\n");
      partial.set(svc, lines.pop() ?? "");
      for (const l of lines.slice(Number.isFinite(n) ? Math.max(0, lines.length - n) : 0)) {
        emit(svc, l);
      }
    }
    if (!ctx.values.follow) return 0;
    let stop = false;
    const onSig = () => stop = true;
    Deno.addSignalListener("SIGINT", onSig);
    while (!stop) {
      await new Promise((r) => setTimeout(r, 100));
      for (const svc of names) {
        let size = 0;
        try {
          size = Deno.statSync(path(svc)).size;
        } catch {
          continue;
        }
        const off = offsets.get(svc) ?? 0;
        if (size < off) offsets.set(svc, 0); // truncated
        if (size <= off) continue;
        const f = Deno.openSync(path(svc));
        try {
          f.seekSync(off, Deno.SeekMode.Start);
          const buf = new Uint8Array(size - off);
          let got = 0;
          while (got < buf.length) {
            const r = f.readSync(buf.subarray(got));
            if (r === null || r === 0) break;
            got += r;
          }
          offsets.set(svc, off + got);
          const text = (partial.get(svc) ?? "") + new TextDecoder().decode(buf.subarray(0, got));
          const lines = text.split("\n");
          partial.set(svc, lines.pop() ?? "");
          for (const l of lines) emit(svc, l);
        } finally {
          f.close();
        }
      }
    }
    Deno.removeSignalListener("SIGINT", onSig);
    return 0;
  },
};
