/**
 * Checkout: materializes a stored tree into a directory, byte-identical to what was added
 * (contents, modes, symlinks, empty directories; owners, mtimes and extended attributes when the
 * tree keeps them and we may apply them: every xattr as root, only `user.*` otherwise; one the
 * filesystem refuses is listed in `skipped`). The tree is written into a temp sibling and renamed into place, so an
 * interrupted checkout leaves nothing at the destination.
 *
 * @example
 * ```ts
 * import { checkoutTree } from "./checkout.ts";
 * import type { Store } from "../cas/store.ts";
 * declare const store: Store;
 * declare const rootId: string;
 * checkoutTree(store, rootId, "/tmp/out");
 * ```
 * @module
 */
import { HdError } from "../sys/errors.ts";
import type { Store } from "../cas/store.ts";
import { getNode, readFileChunks } from "./dag.ts";
import { nodeId } from "./node.ts";
import { libc, LibcError } from "../sys/libc.ts";
import type { DirNode, FileNode } from "./node.ts";
import { S_IFLNK, S_IFMT, S_IFREG } from "../sys/mode.ts";

/** Counters of a checkout. */
export interface CheckoutStats {
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
  /** Entries that could not be created (device nodes without privilege), with the reason. */
  skipped: { path: string; why: string }[];
}

const isRoot = Deno.uid() === 0;

/** Sets the node's xattrs on `path` (not following a symlink); failures go to `skipped`. */
function applyXattrs(
  path: string,
  rel: string,
  xattrs: [string, Uint8Array][] | undefined,
  skipped: { path: string; why: string }[],
): void {
  if (!xattrs?.length) return;
  for (const [name, value] of xattrs) {
    if (!isRoot && !name.startsWith("user.")) {
      skipped.push({ path: rel || ".", why: `xattr ${name} (needs root)` });
      continue;
    }
    try {
      libc().setxattr(path, name, value);
    } catch (e) {
      if (!(e instanceof LibcError)) throw e;
      skipped.push({ path: rel || ".", why: `xattr ${name}: ${e.text} (errno ${e.errno})` });
    }
  }
}

/**
 * The key under which regular files of a tree are written as one inode (hardlinks), or null: a
 * file of an image layer that was hardlinked in its tar carries a link group (FileNode.link), and
 * the entries whose File nodes are equal — content, metadata and group — come out as one inode, as
 * `umoci unpack` makes them. Separate files with the same bytes stay separate files.
 *
 * @example
 * ```ts
 * import { hardlinkKey } from "./checkout.ts";
 * hardlinkKey({ type: "file", mode: 0o100644, size: 0, chunks: [] }); // null: not a link
 * ```
 */
export function hardlinkKey(f: FileNode): string | null {
  if ((f.mode & S_IFMT) !== S_IFREG || f.link === undefined) return null;
  return nodeId(f);
}

function writeFile(store: Store, path: string, f: FileNode): void {
  const file = Deno.openSync(path, { write: true, createNew: true, mode: 0o600 });
  try {
    for (const chunk of readFileChunks(store, f)) {
      let off = 0;
      while (off < chunk.length) off += file.writeSync(chunk.subarray(off));
    }
  } finally {
    file.close();
  }
}

function applyMeta(
  path: string,
  rel: string,
  mode: number,
  n: { uid?: number; gid?: number; mtime?: number; xattrs?: [string, Uint8Array][] },
  skipped: { path: string; why: string }[],
  link = false,
): void {
  if (isRoot && (n.uid !== undefined || n.gid !== undefined)) {
    try {
      // Deno.chown follows symlinks; owners of symlinks themselves are left as is.
      if (!link) Deno.chownSync(path, n.uid ?? 0, n.gid ?? 0);
    } catch { /* unsupported filesystem */ }
  }
  // After chown (which clears security.capability), before chmod (a read-only mode would refuse
  // user.* to a non-root owner).
  applyXattrs(path, rel, n.xattrs, skipped);
  if (!link) Deno.chmodSync(path, mode & 0o7777);
  if (n.mtime !== undefined && !link) {
    try {
      Deno.utimeSync(path, n.mtime, n.mtime);
    } catch { /* ignore */ }
  }
}

/** Writes the tree `id` below `dest`, which must not exist yet (or be an empty directory). */
export function checkoutTree(store: Store, id: string, dest: string): CheckoutStats {
  const root = getNode(store, id);
  if (root.type !== "dir" && root.type !== "file") {
    throw new HdError(
      `Cannot check out ${id}: it is a ${root.type} node`,
      "pass the hash of a directory or file (as printed by `hd cas add`)",
    );
  }
  try {
    const st = Deno.lstatSync(dest);
    if (!st.isDirectory || [...Deno.readDirSync(dest)].length > 0) {
      throw new HdError(
        `Cannot check out into ${dest}: it exists and is not an empty directory`,
        "pick a new directory; hd never overwrites files on checkout",
      );
    }
    Deno.removeSync(dest);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const slash = dest.replace(/\/+$/, "").lastIndexOf("/");
  const parent = slash > 0 ? dest.slice(0, slash) : slash === 0 ? "/" : ".";
  Deno.mkdirSync(parent, { recursive: true });
  const tmp = `${dest.replace(/\/+$/, "")}.hd-checkout-${Deno.pid}-${Date.now().toString(36)}`;
  const stats: CheckoutStats = { files: 0, dirs: 0, symlinks: 0, bytes: 0, skipped: [] };

  const linked = new Map<string, string>(); // hardlinkKey → the first path written
  const writeEntry = (path: string, rel: string, f: FileNode) => {
    const type = f.mode & S_IFMT;
    if (type === S_IFLNK) {
      Deno.symlinkSync(f.target ?? "", path);
      applyXattrs(path, rel, f.xattrs, stats.skipped);
      stats.symlinks++;
    } else if (type === S_IFREG) {
      const key = hardlinkKey(f);
      const first = key === null ? undefined : linked.get(key);
      if (first !== undefined) {
        Deno.linkSync(first, path);
      } else {
        writeFile(store, path, f);
        applyMeta(path, rel, f.mode, f, stats.skipped);
        if (key !== null) linked.set(key, path);
        stats.bytes += f.size;
      }
      stats.files++;
    } else {
      stats.skipped.push({ path: rel, why: `special file (mode ${f.mode.toString(8)})` });
    }
  };

  // Iterative (a stack of steps in the order a recursive walk would take them), so a tree of any
  // depth is written until the kernel itself refuses a path (PATH_MAX), which is reported below.
  type Step =
    | { t: "dir"; id: string; path: string; rel: string }
    | { t: "file"; f: FileNode; path: string; rel: string }
    | { t: "meta"; node: DirNode; path: string; rel: string };
  const writeDir = (dirId: string, path: string, rel: string) => {
    const stack: Step[] = [{ t: "dir", id: dirId, path, rel }];
    while (stack.length) {
      const s = stack.pop()!;
      try {
        if (s.t === "file") {
          writeEntry(s.path, s.rel, s.f);
          continue;
        }
        if (s.t === "meta") {
          applyMeta(s.path, s.rel, s.node.mode, s.node, stats.skipped);
          continue;
        }
        const node = getNode(store, s.id);
        if (node.type !== "dir") {
          throw new HdError(`Cannot check out ${s.rel}: ${s.id} is not a directory`, "");
        }
        Deno.mkdirSync(s.path, { mode: 0o700 });
        stats.dirs++;
        // The directory's own metadata after its children (a read-only mode would refuse them).
        stack.push({ t: "meta", node, path: s.path, rel: s.rel });
        for (let i = node.entries.length - 1; i >= 0; i--) {
          const e = node.entries[i];
          if (e.name.includes("/") || e.name === ".." || e.name === "." || e.name === "") {
            throw new HdError(
              `Cannot check out ${s.rel}: unsafe entry name "${e.name}"`,
              "the tree is damaged or hostile",
            );
          }
          const p = `${s.path}/${e.name}`;
          const r = s.rel ? `${s.rel}/${e.name}` : e.name;
          stack.push(
            e.dir !== undefined
              ? { t: "dir", id: e.dir, path: p, rel: r }
              : { t: "file", f: e.file, path: p, rel: r },
          );
        }
      } catch (e) {
        if (e instanceof HdError || !(e instanceof Error)) throw e;
        const shown = s.rel.length > 200 ? `${s.rel.slice(0, 100)}…${s.rel.slice(-100)}` : s.rel;
        throw new HdError(
          // Deno's message ends with the whole path again: keep only the reason.
          `Cannot check out ${shown || "."}: ${e.message.replace(/(\(os error \d+\)):.*$/s, "$1")}`,
          e instanceof Deno.errors.FilesystemLoop || /name too long/i.test(e.message)
            ? `the tree is ${s.rel.split("/").length} levels deep, deeper than the kernel's ` +
              "PATH_MAX lets one path reach"
            : "check the destination's permissions and free space",
        );
      }
    }
  };

  try {
    if (root.type === "dir") writeDir(id, tmp, "");
    else writeEntry(tmp, "", root);
    Deno.renameSync(tmp, dest);
  } catch (e) {
    try {
      Deno.chmodSync(tmp, 0o700);
      Deno.removeSync(tmp, { recursive: true });
    } catch { /* nothing was created */ }
    throw e;
  }
  return stats;
}
