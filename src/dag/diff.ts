/**
 * Diff of two directory roots: added, removed and changed paths. Subtrees with equal ids are
 * skipped without being read, so the cost follows the size of the change, not of the tree.
 *
 * @example
 * ```ts
 * import { diffTrees } from "./diff.ts";
 * const { added, removed, changed } = diffTrees(store, oldRoot, newRoot);
 * ```
 * @module
 */
import type { Store } from "../cas/store.ts";
import { getNode } from "./dag.ts";
import { type DirNode, encodeFileBody, type FileNode } from "./node.ts";
import { HdError } from "../cas/errors.ts";

/** Paths that differ between two trees; directories end in "/". */
export interface TreeDiff {
  added: string[];
  removed: string[];
  changed: string[];
}

function loadDir(store: Store, id: string): DirNode {
  const n = getNode(store, id);
  if (n.type !== "dir") {
    throw new HdError(`Cannot diff ${id}: it is a ${n.type} node, not a directory`, "");
  }
  return n;
}

function sameFile(a: FileNode, b: FileNode): boolean {
  const ea = encodeFileBody(a);
  const eb = encodeFileBody(b);
  return ea.length === eb.length && ea.every((x, i) => x === eb[i]);
}

function sameXattrs(a?: [string, Uint8Array][], b?: [string, Uint8Array][]): boolean {
  const x = a ?? [];
  const y = b ?? [];
  return x.length === y.length &&
    x.every(([k, v], i) =>
      k === y[i][0] && v.length === y[i][1].length && v.every((c, j) => c === y[i][1][j])
    );
}

function listAll(store: Store, id: string, prefix: string, out: string[]): void {
  const d = loadDir(store, id);
  out.push(prefix + "/");
  for (const e of d.entries) {
    const p = `${prefix}/${e.name}`;
    if (e.dir !== undefined) listAll(store, e.dir, p, out);
    else out.push(p);
  }
}

/** Compares two stored Dir roots. */
export function diffTrees(store: Store, a: string, b: string): TreeDiff {
  const res: TreeDiff = { added: [], removed: [], changed: [] };
  const walk = (ia: string, ib: string, prefix: string) => {
    if (ia === ib) return;
    const da = loadDir(store, ia);
    const db = loadDir(store, ib);
    // A directory's own xattrs changing is a change of that directory (reported as "dir/").
    if (prefix && !sameXattrs(da.xattrs, db.xattrs)) res.changed.push(prefix + "/");
    const mb = new Map(db.entries.map((e) => [e.name, e]));
    const seen = new Set<string>();
    for (const ea of da.entries) {
      const p = prefix ? `${prefix}/${ea.name}` : ea.name;
      const eb = mb.get(ea.name);
      seen.add(ea.name);
      if (!eb) {
        if (ea.dir !== undefined) listAll(store, ea.dir, p, res.removed);
        else res.removed.push(p);
      } else if (ea.dir !== undefined && eb.dir !== undefined) {
        walk(ea.dir, eb.dir, p);
      } else if (ea.file && eb.file) {
        if (!sameFile(ea.file, eb.file)) res.changed.push(p);
      } else {
        // a file became a directory or the reverse
        if (ea.dir !== undefined) listAll(store, ea.dir, p, res.removed);
        else res.removed.push(p);
        if (eb.dir !== undefined) listAll(store, eb.dir, p, res.added);
        else res.added.push(p);
      }
    }
    for (const eb of db.entries) {
      if (seen.has(eb.name)) continue;
      const p = prefix ? `${prefix}/${eb.name}` : eb.name;
      if (eb.dir !== undefined) listAll(store, eb.dir, p, res.added);
      else res.added.push(p);
    }
  };
  walk(a, b, "");
  return res;
}
