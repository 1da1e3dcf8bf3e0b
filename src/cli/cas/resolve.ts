/**
 * Resolving what a user typed into an id: a full id, a unique prefix (at least 8 hex), a ref name,
 * or `ID:path/inside` to name an entry of a tree.
 * @module
 */
import { HdError } from "../../sys/errors.ts";
import { isId } from "../../cas/hash.ts";
import type { Store } from "../../cas/store.ts";
import { getNode } from "../../dag/dag.ts";
import type { FileNode } from "../../dag/node.ts";

/** A resolved name: a stored id, or a file embedded in a directory. */
export type Resolved = { id: string; file?: undefined } | {
  id?: undefined;
  file: FileNode;
  path: string;
};

/** Resolves a hash, prefix or ref to a stored id; throws a clear error otherwise. */
export function resolveId(store: Store, text: string): string {
  const r = resolveName(store, text);
  if (r.id === undefined) {
    throw new HdError(`Cannot use ${text}: it names a file inside a tree, not a stored node`, "");
  }
  return r.id;
}

/** Resolves `text` (hash, prefix, ref, or `ROOT:path`). */
export function resolveName(store: Store, text: string): Resolved {
  const colon = text.indexOf(":");
  if (colon > 0 && !text.startsWith("refs/")) {
    const base = resolveId(store, text.slice(0, colon));
    return walkPath(store, base, text.slice(colon + 1), text);
  }
  if (isId(text)) return { id: text };
  const ref = store.getRef(text.replace(/^refs\//, ""));
  if (ref) return { id: ref };
  if (/^[0-9a-f]{8,63}$/.test(text)) {
    const dir = `${store.root}/objects/${text.slice(0, 2)}`;
    const matches: string[] = [];
    try {
      for (const e of Deno.readDirSync(dir)) {
        if ((text.slice(0, 2) + e.name).startsWith(text)) matches.push(text.slice(0, 2) + e.name);
      }
    } catch { /* none */ }
    if (matches.length === 1) return { id: matches[0] };
    if (matches.length > 1) {
      throw new HdError(
        `Cannot resolve ${text}: ${matches.length} objects start with it`,
        "type more characters",
      );
    }
  }
  throw new HdError(
    `Cannot resolve "${text}": no such object or ref`,
    "pass a 64-hex id, a unique prefix of 8+ hex, a ref name, or ID:path",
  );
}

function walkPath(store: Store, root: string, path: string, text: string): Resolved {
  let cur = root;
  const parts = path.split("/").filter((p) => p && p !== ".");
  for (let i = 0; i < parts.length; i++) {
    const n = getNode(store, cur);
    if (n.type !== "dir") {
      throw new HdError(
        `Cannot resolve ${text}: ${parts.slice(0, i).join("/")} is not a directory`,
        "",
      );
    }
    const e = n.entries.find((x) => x.name === parts[i]);
    if (!e) {
      throw new HdError(
        `Cannot resolve ${text}: no entry "${parts.slice(0, i + 1).join("/")}"`,
        "",
      );
    }
    if (e.dir !== undefined) cur = e.dir;
    else if (i === parts.length - 1) return { file: e.file, path };
    else {throw new HdError(
        `Cannot resolve ${text}: ${parts.slice(0, i + 1).join("/")} is a file`,
        "",
      );}
  }
  return { id: cur };
}
