/**
 * `hd status`: the project's environment as hd sees it now — name, tracked tree and Env hashes,
 * tracked files, hd.lock state, and each build step with its hash and whether it is cached.
 * The data comes from {@link gatherStatus} (src/env/report.ts); this file only prints it.
 * @module
 */
import { lazyImport } from "../sys/lazy.ts";
import { HdError } from "../sys/errors.ts";
import { trace } from "../sys/trace.ts";
import { displayPath, specFilePath } from "../config/find.ts";
import { boundStatus, gatherStatus, quickStatus, type Status } from "../env/report.ts";
import { formatUpStatus, gatherServices } from "../services/report.ts";
import type { MountStatus } from "../mount/manager.ts";
import type { Store } from "../cas/store.ts";
import { StoreView } from "../cas/view.ts";
import { earlyMissed, hasEntries } from "./status_early.ts";
import type { Command } from "./command.ts";
import { formatBytes, type Output } from "./output.ts";

/** Short form of a hash for people. */
export function short(id: string): string {
  return id.slice(0, 12);
}

/**
 * What `hd status` says of a build step: the store's answer (`cached`), unless a running `hd up`
 * knows better — a step it ran whose result is still being recorded (host steps are recorded
 * after the services start), or one it is running or that failed.
 *
 * @example
 * ```ts
 * import { stepLabel } from "./status.ts";
 * stepLabel(false, "ran"); // "ran, being recorded"
 * ```
 */
export function stepLabel(
  cached: boolean,
  live?: "cached" | "ran" | "failed" | "pending",
): "cached" | "ran, being recorded" | "running" | "failed" | "not built" {
  if (cached) return "cached";
  if (live === "ran" || live === "cached") return "ran, being recorded";
  if (live === "pending") return "running";
  if (live === "failed") return "failed";
  return "not built";
}

/**
 * The human text of the foundation part of a status; `live` is the step states of a running
 * `hd up` by step hash (see {@link stepLabel}).
 */
export function formatStatus(
  s: Status,
  out: Output,
  live: Map<string, "cached" | "ran" | "failed" | "pending"> = new Map(),
): string {
  const lines = [
    `${out.paint("environment", "bold")} ${s.name}  (${displayPath(s.file)})`,
    `  base     ${s.base ?? "(none: runs on the host)"}${
      s.basePulled === false
        ? out.paint("  not pulled yet: step hashes change once it is", "yellow")
        : ""
    }`,
    `  env      ${short(s.env.id)}  ${
      s.env.upToDate
        ? out.paint("recorded", "green")
        : s.env.recorded
        ? out.paint(`changed since ${short(s.env.recorded)}`, "yellow")
        : out.paint("not recorded yet", "yellow")
    }`,
    `  files    ${short(s.tree.root)}  ${s.tree.files} file${s.tree.files === 1 ? "" : "s"}, ${
      formatBytes(s.tree.bytes)
    }`,
    s.dependencies === 0 && s.lock === "missing"
      ? "  lock     none needed (no [dependencies])"
      : `  lock     hd.lock ${
        s.lock === "current"
          ? out.paint("up to date", "green")
          : s.lock === "missing"
          ? out.paint("missing (run `hd lock`)", "yellow")
          : out.paint("stale (run `hd lock`)", "yellow")
      }, ${s.packages} package${s.packages === 1 ? "" : "s"}`,
  ];
  if (s.steps.length) lines.push(`${out.paint("build steps", "bold")}`);
  for (const st of s.steps) {
    const label = stepLabel(st.cached, live.get(st.hash));
    const state = out.paint(
      label,
      label === "cached" ? "green" : label === "failed" ? "red" : "yellow",
    );
    lines.push(`  ${st.index + 1}. ${short(st.hash)}  ${state}  ${st.run}`);
    const ins = st.inputs.filter((i) => i.label !== "previous" && i.label !== "base")
      .map((i) => `${i.label}${i.missing ? " (missing)" : ""}`);
    if (ins.length) lines.push(out.paint(`     inputs: ${ins.join(", ")}`, "dim"));
  }
  for (const k of s.skipped) lines.push(out.paint(`skipped ${k.path}: ${k.why}`, "dim"));
  return lines.join("\n");
}

/** The mounts of the store (`hd mount`), live or stale; empty text when there are none. */
export function formatMounts(mounts: MountStatus[], out: Output): string {
  if (mounts.length === 0) return "";
  const lines = [`\n${out.paint("mounts", "bold")}`];
  for (const m of mounts) {
    const state = m.state === "live"
      ? out.paint(`live (pid ${m.pid})`, "green")
      : out.paint("stale (its process is gone: `hd unmount` or `hd mount` again)", "yellow");
    lines.push(`  ${m.dir}  ${short(m.root)}${m.rw ? " rw" : ""}  ${state}`);
  }
  return lines.join("\n");
}

/** `hd status`. */
export const status: Command = {
  name: "status",
  summary: "show the environment: hashes, files, build steps, services, mounts",
  usage: "hd status [--file PATH]",
  options: {
    file: {
      type: "string",
      help: "path of hd.toml (default: found from the current directory up)",
    },
  },
  // the store and the scanner load only when the proof of the last status does not hold
  lazyStore: true,
  async run(ctx) {
    if (ctx.positionals.length > 0) {
      throw new HdError("Cannot show status: unexpected argument", "usage: hd status", 2);
    }
    const file = specFilePath(ctx.values.file as string | undefined);
    // Without images, a saved proof can answer with the store only viewed (no BLAKE3, no codecs:
    // src/cas/view.ts); one that binds hd.toml too answers without loading the parser.
    const view = StoreView.open(ctx.storeRoot);
    const secret = view?.secretKey() ?? null;
    let store: Store | null = null;
    // (not again when cli.ts's early path found that proof failing in this process)
    let s: Status | null = view && secret && !earlyMissed(file)
      ? await boundStatus(view, secret, file)
      : null;
    trace(s ? "status: from the proof that binds hd.toml" : "status: parse hd.toml");
    if (!s) {
      // which variables the parse reads, for a proof that binds it
      const { loadBoundSpec } = await lazyImport<typeof import("../env/bound_spec.ts")>(
        new URL("../env/bound_spec.ts", import.meta.url),
      );
      const { spec, bind } = loadBoundSpec(file);
      // the runtime hashes pulled images (base, stages) by their manifest digests (stepBaseId),
      // not their references: so does status.
      const plain = bind.plain;
      let tried = false;
      if (plain && view && secret) (tried = true, s = await quickStatus(view, secret, spec));
      if (!s) {
        store = await ctx.openStore();
        const ids = plain ? {} : (await lazyImport<typeof import("../runtime/step_cache.ts")>(
          new URL("../runtime/step_cache.ts", import.meta.url),
        )).pulledImageIds(store, spec);
        s = await gatherStatus(store, spec, undefined, {
          ...ids,
          quick: tried ? "save" : true,
          // (the parser and hd.toml were read after the process started)
          bind,
        });
      }
    }
    const st = s;
    const up = await gatherServices(st.dir); // services of a running `hd up` (src/services)
    // the mount registry is read (and its module loaded) only when it has entries
    const mounts = hasEntries(`${ctx.storeRoot}/mounts`)
      ? (await lazyImport<typeof import("../mount/manager.ts")>(
        new URL("../mount/manager.ts", import.meta.url),
      )).listMounts(store ?? await ctx.openStore())
        .filter((m) => m.state !== "gone")
      : [];
    ctx.out.result(
      { ...st, up, mounts },
      () =>
        formatStatus(
          st,
          ctx.out,
          new Map(("steps" in up ? up.steps : []).map((x) => [x.hash, x.state])),
        ) +
        "\n" + formatUpStatus(up) + formatMounts(mounts, ctx.out),
    );
    return 0;
  },
};
