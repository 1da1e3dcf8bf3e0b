/**
 * `hd lock`: resolves every [dependencies] entry and writes hd.lock beside hd.toml (atomically,
 * only when its bytes change), then prints what changed. `--check` writes nothing and exits 1
 * when hd.lock is missing or out of date.
 * @module
 */
import { HdError } from "../sys/errors.ts";
import {
  diffLocks,
  LOCK_FILE,
  lockStatus,
  readLock,
  resolveLock,
  writeLock,
} from "../config/lockfile.ts";
import { displayPath, loadProjectSpec } from "../config/parse.ts";
import type { Command } from "./command.ts";

/** `hd lock`. */
export const lock: Command = {
  name: "lock",
  summary: "resolve dependencies and write hd.lock",
  usage: "hd lock [--file PATH] [--check]",
  options: {
    file: {
      type: "string",
      help: "path of hd.toml (default: found from the current directory up)",
    },
    check: { type: "boolean", help: "write nothing; exit 1 when hd.lock is missing or stale" },
  },
  async run(ctx) {
    if (ctx.positionals.length > 0) {
      throw new HdError("Cannot lock: unexpected argument", "usage: hd lock [--file PATH]", 2);
    }
    const spec = loadProjectSpec(ctx.values.file as string | undefined);
    const path = `${spec.dir}/${LOCK_FILE}`;
    const check = ctx.values.check === true;
    let old;
    try {
      old = readLock(path);
    } catch (e) {
      // hd.lock is generated: `hd lock` is how a damaged one gets repaired (--check only reports).
      if (check || !(e instanceof HdError)) throw e;
      ctx.out.note(`note: ${e.message}; writing a new one`);
      old = null;
    }
    if (check) {
      // the same judge as `hd status`: offline, and they agree
      const st = lockStatus(spec, old);
      if (st.state !== "current") {
        throw new HdError(
          `Cannot verify ${displayPath(path)}: it is ${
            st.state === "missing" ? "missing" : `out of date (${st.why})`
          }`,
          "run `hd lock` and commit hd.lock",
        );
      }
      const n = `${old!.packages.length} package${old!.packages.length === 1 ? "" : "s"}`;
      ctx.out.result(
        { file: path, written: false, created: false, packages: old!.packages.length, changes: [] },
        () => `${displayPath(path)} is up to date (${n})`,
      );
      return 0;
    }
    const next = await resolveLock(spec);
    const changes = diffLocks(old, next);
    const written = writeLock(path, next);
    ctx.out.result(
      {
        file: path,
        written,
        created: old === null && written,
        packages: next.packages.length,
        changes,
      },
      () => {
        const lines = changes.map((c) => {
          switch (c.kind) {
            case "added":
              return `+ ${c.what} ${c.to}`;
            case "removed":
              return `- ${c.what} ${c.from}`;
            case "changed":
              return `~ ${c.what} ${c.from} -> ${c.to}`;
            default:
              return `~ input ${c.what} ${c.from ? c.from.slice(0, 12) : "(new)"} -> ${
                c.to ? c.to.slice(0, 12) : "(gone)"
              }`;
          }
        });
        const n = `${next.packages.length} package${next.packages.length === 1 ? "" : "s"}`;
        if (!written) lines.push(`${displayPath(path)} is up to date (${n})`);
        else if (old === null) lines.push(`wrote ${displayPath(path)} (${n})`);
        else lines.push(`updated ${displayPath(path)} (${n}, ${changes.length} changes)`);
        return lines.join("\n");
      },
    );
    return 0;
  },
};
