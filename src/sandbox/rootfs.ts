/**
 * Root filesystem assembly: layer directories (see layers.ts) stacked by overlayfs —
 * lowerdirs = layers, highest priority first; upperdir = the writable layer — or, where overlayfs
 * cannot be mounted, a hardlink farm (every layer's files linked into one directory, lowest
 * first, whiteouts applied; writes then go straight into the farm, see the caveat in
 * docs/sandbox.md). Whether overlayfs works is probed once per process by mounting a tiny one.
 *
 * @example
 * ```ts
 * import { mountRootfs, unmountRootfs } from "./rootfs.ts";
 * declare const stepDir: string, baseDir: string, upper: string, work: string, target: string;
 * const m = mountRootfs({ lowers: [stepDir, baseDir], upper, work, target });
 * unmountRootfs(m);
 * ```
 * @module
 */
import { HdError } from "../sys/errors.ts";
import type { Store } from "../cas/store.ts";
import { getNode } from "../dag/dag.ts";
import { S_IFCHR, S_IFMT } from "../sys/mode.ts";
import { globMatcher } from "../sys/glob.ts";
import { MNT_DETACH } from "../../ffi/libc.ts";
import { libc, LibcError } from "../sys/libc.ts";
import { OPAQUE_MARKER, OPAQUE_XATTR, WHITEOUT_PREFIX } from "./layers.ts";

/** How a root filesystem was assembled. */
export type RootfsMode = "overlay" | "hardlink";

/** A root filesystem to assemble. */
export interface RootfsSpec {
  /** Layer directories, highest priority first. */
  lowers: string[];
  /** The writable layer (overlay upperdir); created when missing. */
  upper: string;
  /** overlayfs' work directory (same filesystem as upper); created when missing. */
  work: string;
  /** Where the root appears. */
  target: string;
  /** Force a mode (default: overlay when it can be mounted). */
  mode?: RootfsMode;
}

/** An assembled root filesystem. */
export interface Rootfs extends RootfsSpec {
  mode: RootfsMode;
  /** Why overlay was not used, in hardlink mode. */
  why?: string;
  ms: number;
}

let probed: { ok: boolean; why?: string } | null = null;

/** Whether overlayfs can be mounted here (probed once, with a tiny mount under `scratch`). */
export function overlayAvailable(scratch: string): { ok: boolean; why?: string } {
  if (probed) return probed;
  const env = Deno.env.get("HD_ROOTFS");
  if (env === "hardlink") return probed = { ok: false, why: "HD_ROOTFS=hardlink" };
  const d = `${scratch}/.overlay-probe-${Deno.pid}`;
  try {
    for (const s of ["l", "u", "w", "m"]) Deno.mkdirSync(`${d}/${s}`, { recursive: true });
    libc().mount(
      "overlay",
      `${d}/m`,
      "overlay",
      0,
      `lowerdir=${d}/l,upperdir=${d}/u,workdir=${d}/w`,
    );
    libc().umount(`${d}/m`);
    probed = { ok: true };
  } catch (e) {
    probed = { ok: false, why: e instanceof LibcError ? e.message : String(e) };
  } finally {
    try {
      Deno.removeSync(d, { recursive: true });
    } catch { /* ignore */ }
  }
  return probed;
}

/** True when `path` is a mount point (listed in /proc/self/mountinfo). */
export function isMountPoint(path: string): boolean {
  const p = path.replace(/\/+$/, "");
  for (const line of Deno.readTextFileSync("/proc/self/mountinfo").split("\n")) {
    const f = line.split(" ");
    if (f[4] && f[4].replace(/\\040/g, " ") === p) return true;
  }
  return false;
}

/** Assembles the root at `spec.target` (overlay mount, or hardlink farm as a fallback). */
export function mountRootfs(spec: RootfsSpec): Rootfs {
  const t0 = performance.now();
  for (const d of [spec.upper, spec.work, spec.target]) Deno.mkdirSync(d, { recursive: true });
  let mode = spec.mode;
  let why: string | undefined;
  if (mode === undefined) {
    const av = overlayAvailable(spec.work.slice(0, spec.work.lastIndexOf("/")) || "/");
    mode = av.ok ? "overlay" : "hardlink";
    why = av.why;
  }
  if (mode === "overlay") {
    if (spec.lowers.length === 0) throw new Error("Cannot mount a root without layers");
    const opts = `lowerdir=${spec.lowers.join(":")},upperdir=${spec.upper},workdir=${spec.work}`;
    if (opts.length > 4000) {
      throw new HdError(
        `Cannot mount the root filesystem: ${spec.lowers.length} layers are too many for one mount`,
        "merge build steps into fewer steps",
      );
    }
    try {
      libc().mount("overlay", spec.target, "overlay", 0, opts);
    } catch (e) {
      throw new HdError(
        `Cannot mount the root filesystem at ${spec.target}: ${(e as Error).message}`,
        "run as root, or set HD_ROOTFS=hardlink to use a hardlink farm instead of overlayfs",
      );
    }
  } else {
    buildFarm(spec.lowers, spec.target);
  }
  return { ...spec, mode, why, ms: performance.now() - t0 };
}

/** Unmounts (overlay) or removes (hardlink farm) an assembled root. */
export function unmountRootfs(r: { mode: RootfsMode; target: string }): void {
  if (r.mode === "overlay") {
    try {
      libc().umount(r.target, MNT_DETACH);
    } catch { /* not mounted */ }
  } else {
    try {
      Deno.removeSync(r.target, { recursive: true });
    } catch { /* gone */ }
  }
}

function linkTree(src: string, dst: string): void {
  const opaque = libc().getxattr(src, OPAQUE_XATTR) === "y";
  if (opaque) {
    try {
      Deno.removeSync(dst, { recursive: true });
    } catch { /* nothing below */ }
  }
  try {
    const st = Deno.lstatSync(dst);
    if (!st.isDirectory) Deno.removeSync(dst, { recursive: true });
  } catch { /* new */ }
  const sst = Deno.statSync(src);
  try {
    Deno.mkdirSync(dst);
    Deno.chmodSync(dst, (sst.mode ?? 0o755) & 0o7777);
    if (sst.uid || sst.gid) Deno.chownSync(dst, sst.uid, sst.gid);
  } catch (e) {
    if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
  }
  for (const e of Deno.readDirSync(src)) {
    const s = `${src}/${e.name}`;
    const d = `${dst}/${e.name}`;
    const st = Deno.lstatSync(s);
    if (((st.mode ?? 0) & S_IFMT) === S_IFCHR && (st.rdev ?? 0) === 0) {
      try {
        Deno.removeSync(d, { recursive: true });
      } catch { /* nothing to hide */ }
      continue;
    }
    if (st.isDirectory) {
      linkTree(s, d);
      continue;
    }
    try {
      Deno.removeSync(d, { recursive: true });
    } catch { /* new */ }
    Deno.linkSync(s, d);
  }
}

/** Links every layer (given highest first) into `target`, lowest first, applying whiteouts. */
export function buildFarm(lowers: string[], target: string): void {
  for (const l of [...lowers].reverse()) linkTree(l, target);
}

/** A path provided by more than one layer. */
export interface Conflict {
  path: string;
  /** Indexes into the layer list given (lowest first). */
  layers: number[];
}

/** Paths that are expected to be rewritten by several layers (package databases, caches). */
export const DEFAULT_CONFLICT_WHITELIST: readonly string[] = [
  "var/lib/dpkg/**",
  "var/lib/apt/**",
  "var/cache/**",
  "var/log/**",
  "etc/ld.so.cache",
  "tmp/**",
  "root/.npm/**",
  "usr/share/doc/**",
  "**/__pycache__/**",
];

/**
 * Files (not directories) provided by more than one of the layer trees `layerIds` (lowest first),
 * except those matching `whitelist` globs and whiteouts.
 */
export function layerConflicts(
  store: Store,
  layerIds: string[],
  whitelist: readonly string[] = DEFAULT_CONFLICT_WHITELIST,
): Conflict[] {
  const ok = globMatcher(whitelist);
  const seen = new Map<string, number[]>();
  const walk = (id: string, prefix: string, layer: number) => {
    const n = getNode(store, id);
    if (n.type !== "dir") return;
    for (const e of n.entries) {
      if (e.name === OPAQUE_MARKER || e.name.startsWith(WHITEOUT_PREFIX)) continue;
      const p = prefix ? `${prefix}/${e.name}` : e.name;
      if (e.dir !== undefined) walk(e.dir, p, layer);
      else {
        const l = seen.get(p);
        if (l) l.push(layer);
        else seen.set(p, [layer]);
      }
    }
  };
  layerIds.forEach((id, i) => walk(id, "", i));
  const out: Conflict[] = [];
  for (const [path, layers] of seen) {
    if (layers.length > 1 && !ok(path)) out.push({ path, layers });
  }
  return out.sort((a, b) => (a.path < b.path ? -1 : 1));
}
