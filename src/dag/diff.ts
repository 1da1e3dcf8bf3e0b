/**
 * Diff of two directory roots: added, removed and changed paths. Subtrees with equal ids are
 * skipped without being read, so the cost follows the size of the change, not of the tree.
 *
 * @example
 * ```ts
 * import { diffTrees } from "./diff.ts";
 * import type { Store } from "../cas/store.ts";
 * declare const store: Store;
 * declare const oldRoot: string, newRoot: string;
 * const { added, removed, changed } = diffTrees(store, oldRoot, newRoot);
 * ```
 * @module
 */
import type { Store } from "../cas/store.ts";
import { getNode } from "./dag.ts";
import { type DirNode, encodeFileBody, type FileNode } from "./node.ts";
import { HdError } from "../sys/errors.ts";

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

/** One step of the diff walk; steps run in order, each expanding into more steps. */
type Step =
  | { t: "walk"; ia: string; ib: string; prefix: string }
  | { t: "list"; id: string; prefix: string; out: string[] }
  | { t: "push"; p: string; out: string[] };

/**
 * Compares two stored Dir roots. Iterative (a stack of steps, run in the order a recursive walk
 * would), so trees of any depth are fine.
 */
export function diffTrees(store: Store, a: string, b: string): TreeDiff {
  const res: TreeDiff = { added: [], removed: [], changed: [] };
  const stack: Step[] = [{ t: "walk", ia: a, ib: b, prefix: "" }];
  const gone = (id: string | undefined, p: string, out: string[]): Step =>
    id !== undefined ? { t: "list", id, prefix: p, out } : { t: "push", p, out };
  while (stack.length) {
    const s = stack.pop()!;
    if (s.t === "push") {
      s.out.push(s.p);
      continue;
    }
    const next: Step[] = [];
    if (s.t === "list") {
      const d = loadDir(store, s.id);
      s.out.push(s.prefix + "/");
      for (const e of d.entries) next.push(gone(e.dir, `${s.prefix}/${e.name}`, s.out));
    } else {
      const { ia, ib, prefix } = s;
      if (ia === ib) continue;
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
          next.push(gone(ea.dir, p, res.removed));
        } else if (ea.dir !== undefined && eb.dir !== undefined) {
          next.push({ t: "walk", ia: ea.dir, ib: eb.dir, prefix: p });
        } else if (ea.file && eb.file) {
          if (!sameFile(ea.file, eb.file)) next.push({ t: "push", p, out: res.changed });
        } else {
          // a file became a directory or the reverse
          next.push(gone(ea.dir, p, res.removed));
          next.push(gone(eb.dir, p, res.added));
        }
      }
      for (const eb of db.entries) {
        if (seen.has(eb.name)) continue;
        next.push(gone(eb.dir, prefix ? `${prefix}/${eb.name}` : eb.name, res.added));
      }
    }
    for (let i = next.length - 1; i >= 0; i--) stack.push(next[i]);
  }
  return res;
}
