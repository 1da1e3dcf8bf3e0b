/**
 * `hd status` answered before the CLI loads (cli.ts calls {@link statusEarly} first for
 * `hd status [--json]`): when the saved proof that binds hd.toml holds (src/env/quick_status.ts),
 * no `hd up` state is in the project and the store has no mounts, the answer needs only the proof,
 * the store's refs and key — not the command registry, the option parser or the services' code.
 * Anything else (another option, no proof, a proof that fails, an `.hd/up.json` of any kind, a
 * mount, any error) returns null and the full command (src/cli/status.ts) runs and answers, so the
 * early path prints exactly what the full command prints or nothing at all
 * (tests/cli/status_early_test.ts compares the two).
 *
 * @example
 * ```ts
 * import { statusEarly } from "./status_early.ts";
 * const code = await statusEarly(["status", "--json"]); // null: run the full command
 * ```
 * @module
 */
import { boundStatus, type Status } from "../env/report.ts";
import { StoreView } from "../cas/view.ts";
import { defaultStoreRoot } from "../cas/root.ts";
import { findSpecFile } from "../config/find.ts";
import { trace } from "../sys/trace.ts";

/**
 * Whether `args` (the CLI's, without the program name) are ones the early path answers (pure):
 * `status` alone or with `--json` once; null for anything else (the full command parses those).
 */
export function earlyStatusArgs(args: readonly string[]): { json: boolean } | null {
  if (args[0] !== "status" || args.length > 2) return null;
  if (args.length === 1) return { json: false };
  return args[1] === "--json" ? { json: true } : null;
}

/** Whether `dir` holds any entry (false when it is missing or unreadable). */
export function hasEntries(dir: string): boolean {
  try {
    for (const _ of Deno.readDirSync(dir)) return true;
  } catch { /* none */ }
  return false;
}

/** The hd.toml whose bound proof the early path found not to hold (then the full command parses). */
let missed: string | null = null;

/**
 * Whether the early path already checked the proof that binds `file` in this process and it did
 * not hold: the full command then goes straight to parsing instead of checking it again.
 */
export function earlyMissed(file: string): boolean {
  return missed === file;
}

/** Whether the project at `dir` has no `.hd/up.json` (src/services/control.ts's upStatePath). */
function noUpState(dir: string): boolean {
  try {
    Deno.lstatSync(`${dir}/.hd/up.json`);
  } catch (e) {
    return e instanceof Deno.errors.NotFound;
  }
  return false;
}

/**
 * Prints the status of the project found from the current directory and resolves to the exit
 * code (0) when the early path can answer (see the module doc), else to null without printing.
 */
export async function statusEarly(args: readonly string[]): Promise<number | null> {
  const a = earlyStatusArgs(args);
  if (a === null) return null;
  let st: Status | null;
  let storeRoot: string;
  try {
    storeRoot = defaultStoreRoot();
    const file = findSpecFile();
    const view = StoreView.open(storeRoot);
    const secret = view?.secretKey() ?? null;
    if (view === null || secret === null) return null;
    st = await boundStatus(view, secret, file);
    if (st === null) {
      missed = file;
      return null;
    }
    if (!noUpState(st.dir) || hasEntries(`${storeRoot}/mounts`)) return null;
  } catch {
    return null; // the full command reports it
  }
  trace("process start", 0);
  trace("status: early answer from the proof that binds hd.toml");
  // what src/cli/status.ts prints when no `hd up` runs (gatherServices) and there is no mount
  const up = { running: false as const };
  let text: string;
  if (a.json) {
    text = JSON.stringify({ ...st, up, mounts: [] }, null, 2) + "\n";
  } else {
    const [{ formatStatus }, { formatUpStatus }, { Output }] = await Promise.all([
      import("./status.ts"),
      import("../services/report.ts"),
      import("./output.ts"),
    ]);
    text = formatStatus(st, new Output({ json: false })) + "\n" + formatUpStatus(up);
    if (!text.endsWith("\n")) text += "\n"; // as Output.result
  }
  try {
    // writeSync may write part of it (a pipe with little room): write until all is out
    const bytes = new TextEncoder().encode(text);
    for (let off = 0; off < bytes.length;) off += Deno.stdout.writeSync(bytes.subarray(off));
  } catch (e) {
    // nothing to fall back to once printing was tried: say so, as main() would
    Deno.stderr.writeSync(
      new TextEncoder().encode(`error: Cannot print the status: ${(e as Error).message}\n`),
    );
    return 1;
  }
  trace("exit");
  return 0;
}
