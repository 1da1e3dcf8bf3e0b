/**
 * Volumes of sandboxed services: named volumes, binds of project paths, tmpfs.
 *
 * A **named volume** is a directory `$HD_HOME/volumes/<env>/<name>` bound into the container. It
 * lives beside the store rather than in the project's `.hd/` because (1) it is state hd owns, like
 * `$HD_HOME/cache/<env>`: a repository cannot ship one (a `.hd/volumes/data` symlink to `/etc`
 * would otherwise be bound into a container), (2) it is named like its ref `volumes/<env>/<name>`
 * (one namespace: the environment's name), and (3) it survives `git clean -fdx` and a fresh
 * checkout of the project, as a Docker volume survives the compose file's directory. A new (or
 * empty) volume first mounted on a path where the root has a directory is seeded with that
 * directory's contents, owners and modes (Docker's behaviour; `:nocopy` skips it); device nodes,
 * FIFOs and sockets are not copied. `hd down` snapshots every volume of the environment into the
 * store as a tree (owners, modes, symlinks kept), referenced by `volumes/<env>/<name>` — so it is
 * deduplicated, `hd cas verify` checks it and gc keeps it — under a lease while it writes; a
 * volume whose directory is missing while its ref exists is checked out from that tree;
 * `hd down -v` removes the directories and the refs ({@link volumesToRemove} decides which).
 *
 * A **bind** names a path of the project (checked relative, without `..`, when hd.toml is read);
 * each existing component must be a directory or file, never a symlink (the bind would follow it
 * out of the project); a missing source is created as a directory (as compose does). `:ro` binds
 * read-only. A **tmpfs** is a fresh `tmpfs` (nosuid, nodev).
 *
 * @example
 * ```ts
 * import type { Store } from "../cas/store.ts";
 * import type { EnvSpec } from "../config/types.ts";
 * declare const store: Store;
 * declare const spec: EnvSpec;
 * declare const root: string;
 * import { serviceMounts, snapshotVolumes } from "./volumes.ts";
 * const m = serviceMounts(store, spec, spec.services.db, root); // { binds, tmpfs }
 * snapshotVolumes(store, spec.environment.name);               // on hd down
 * ```
 * @module
 */
import { HdError } from "../sys/errors.ts";
import type { Store } from "../cas/store.ts";
import type { EnvSpec, ServiceSpec, VolumeMount } from "../config/types.ts";
import { checkoutTree } from "../dag/checkout.ts";
import { captureLayer } from "../sandbox/layers.ts";
import { resolveInRoot } from "../sandbox/inroot.ts";
import type { BindSpec } from "../sandbox/container.ts";
import { secretBinds } from "./secrets.ts";

/** Where the named volumes of environment `env` live. */
export function volumesDir(store: Store, env: string): string {
  return `${store.root}/volumes/${encodeURIComponent(env)}`;
}

/** The directory of named volume `name` of environment `env`. */
export function volumeDir(store: Store, env: string, name: string): string {
  return `${volumesDir(store, env)}/${name}`;
}

/** The ref that keeps the snapshot of volume `name` of environment `env`. */
export function volumeRef(env: string, name: string): string {
  return `volumes/${env}/${name}`;
}

const NAME = /^[a-z0-9][a-z0-9_.-]*$/;

/**
 * Which volumes `hd down -v` removes for environment `env`: the names of its directories and of
 * its refs (`volumes/<env>/<name>`) that are volume names — never another environment's, never a
 * name with a `/` (a ref of a longer environment name such as `volumes/<env>/x/y`), never one
 * that is not a volume name (`.`, `..`, a temp file).
 */
export function volumesToRemove(env: string, dirs: string[], refs: string[]): string[] {
  const prefix = `volumes/${env}/`;
  const out = new Set<string>();
  for (const d of dirs) if (NAME.test(d)) out.add(d);
  for (const r of refs) {
    if (!r.startsWith(prefix)) continue;
    const n = r.slice(prefix.length);
    if (NAME.test(n)) out.add(n);
  }
  return [...out].sort();
}

function lstat(p: string): Deno.FileInfo | null {
  try {
    return Deno.lstatSync(p);
  } catch {
    return null;
  }
}

/** True when `dir` is missing or an empty directory. */
function isEmptyDir(dir: string): boolean {
  try {
    for (const _ of Deno.readDirSync(dir)) return false;
    return true;
  } catch {
    return true;
  }
}

/**
 * Copies the directory tree `src` into `dst` (an existing directory): directories, regular files
 * and symlinks (as links), with owners, modes and mtimes; no device node, FIFO or socket. `dst`
 * takes `src`'s own owner and mode.
 */
export function seedDir(src: string, dst: string): number {
  let n = 0;
  const meta = (from: Deno.FileInfo, to: string) => {
    try {
      Deno.chownSync(to, from.uid, from.gid);
    } catch { /* not root: keep ours */ }
    if (!from.isSymlink) Deno.chmodSync(to, (from.mode ?? 0o755) & 0o7777);
    if (!from.isSymlink && from.mtime) Deno.utimeSync(to, from.atime ?? from.mtime, from.mtime);
  };
  const walk = (s: string, d: string) => {
    for (const e of Deno.readDirSync(s)) {
      const sp = `${s}/${e.name}`, dp = `${d}/${e.name}`;
      const st = Deno.lstatSync(sp);
      if (st.isDirectory) {
        Deno.mkdirSync(dp);
        walk(sp, dp);
        meta(st, dp);
      } else if (st.isFile) {
        Deno.copyFileSync(sp, dp);
        meta(st, dp);
      } else if (st.isSymlink) {
        // owned by root: chown would follow the link to whatever it names on the host
        Deno.symlinkSync(Deno.readLinkSync(sp), dp);
      } else continue;
      n++;
    }
  };
  const top = Deno.statSync(src);
  walk(src, dst);
  meta(top, dst);
  return n;
}

/**
 * The host path of project path `rel` for a bind mount: each existing component below the project
 * must not be a symlink (the mount would follow it out); a missing one is created as a directory.
 */
export function bindSource(projectDir: string, rel: string, what: string): string {
  let cur = projectDir;
  for (const c of rel === "." ? [] : rel.split("/")) {
    cur = `${cur}/${c}`;
    const st = lstat(cur);
    if (st === null) {
      Deno.mkdirSync(cur);
      continue;
    }
    if (st.isSymlink) {
      throw new HdError(
        `Cannot bind ./${rel} into ${what}: ${cur.slice(projectDir.length + 1)} is a symbolic link`,
        "a bind mount follows links, which could lead out of the project; bind the real directory",
      );
    }
  }
  return cur;
}

/**
 * The mounts of service `s` of `spec` whose root is `root` (host path): binds (named volumes,
 * created and seeded as needed; project paths) and tmpfs targets.
 */
export function serviceMounts(
  store: Store,
  spec: EnvSpec,
  s: ServiceSpec,
  root: string,
): { binds: BindSpec[]; tmpfs: string[] } {
  const binds: BindSpec[] = [];
  const tmpfs: string[] = [];
  for (const m of s.volumes ?? []) {
    if (m.type === "tmpfs") tmpfs.push(m.target);
    else if (m.type === "bind") {
      const src = bindSource(spec.dir, m.source, `service "${s.name}"`);
      binds.push({ src, dst: m.target, readonly: m.read_only });
    } else if (m.source !== "") {
      binds.push({ src: namedVolume(store, spec, m, root), dst: m.target, readonly: m.read_only });
    }
  }
  binds.push(...secretBinds(spec, s)); // /run/secrets/NAME (secrets.ts)
  return { binds, tmpfs };
}

/** Creates (and on first use seeds) the directory of named volume `m`; returns it. */
function namedVolume(store: Store, spec: EnvSpec, m: VolumeMount, root: string): string {
  const base = volumesDir(store, spec.environment.name);
  Deno.mkdirSync(base, { recursive: true, mode: 0o700 });
  const dir = `${base}/${m.source}`;
  const st = lstat(dir);
  if (st !== null && !st.isDirectory) {
    throw new HdError(
      `Cannot use volume "${m.source}": ${dir} is not a directory`,
      `remove it (\`hd down -v\` removes the environment's volumes)`,
    );
  }
  const snapshot = st === null ? store.getRef(volumeRef(spec.environment.name, m.source)) : null;
  if (snapshot !== null) {
    // the directory is gone but the store keeps the volume: restore it from its tree
    checkoutTree(store, snapshot, dir);
    return dir;
  }
  if (st === null) Deno.mkdirSync(dir, { mode: 0o755 });
  if (!m.nocopy && isEmptyDir(dir)) {
    // the image's content at the target, resolved inside the root (never a path outside it)
    const from = resolveInRoot(root, m.target);
    if (lstat(from)?.isDirectory) seedDir(from, dir);
  }
  return dir;
}

/** What {@link snapshotVolumes} recorded. */
export interface VolumeSnapshot {
  name: string;
  ref: string;
  tree: string;
  files: number;
  bytes: number;
}

/**
 * Stores every named volume of environment `env` as a tree and points `volumes/<env>/<name>` at
 * it (a lease keeps what is written until the ref is set).
 */
export async function snapshotVolumes(store: Store, env: string): Promise<VolumeSnapshot[]> {
  const base = volumesDir(store, env);
  const out: VolumeSnapshot[] = [];
  let names: string[] = [];
  try {
    names = [...Deno.readDirSync(base)].filter((e) => e.isDirectory && NAME.test(e.name))
      .map((e) => e.name).sort();
  } catch {
    return out;
  }
  for (const name of names) {
    using _lease = store.lease(`volume ${env}/${name}`);
    const c = await store.withLock(
      "shared",
      () => captureLayer(store, `${base}/${name}`, { root: true }),
    );
    const ref = volumeRef(env, name);
    store.setRef(ref, c.id);
    out.push({ name, ref, tree: c.id, files: c.files, bytes: c.bytes });
  }
  return out;
}

/** `hd down -v`: removes the volume directories of `env` and their refs; returns the names. */
export function removeVolumes(store: Store, env: string): string[] {
  const base = volumesDir(store, env);
  let dirs: string[] = [];
  try {
    dirs = [...Deno.readDirSync(base)].map((e) => e.name);
  } catch { /* none */ }
  const refs = store.listRefs().map(([n]) => n);
  const names = volumesToRemove(env, dirs, refs);
  for (const n of names) {
    try {
      Deno.removeSync(`${base}/${n}`, { recursive: true });
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    store.deleteRef(volumeRef(env, n));
  }
  return names;
}
