/**
 * `hd cas cat HASH|ROOT:path`: prints stored content. A file (or a chunk) prints its bytes, a
 * directory its listing, other nodes their fields; `--json` prints the decoded node.
 * @module
 */
import { HdError } from "../../sys/errors.ts";
import { getNode, readFileChunks } from "../../dag/dag.ts";
import { decodeNode, type FileNode, isNodeEncoding } from "../../dag/node.ts";
import { S_IFLNK, S_IFMT } from "../../sys/mode.ts";
import type { Command } from "../command.ts";
import { resolveName } from "./resolve.ts";

function writeAll(b: Uint8Array): void {
  let off = 0;
  while (off < b.length) off += Deno.stdout.writeSync(b.subarray(off));
}

/** `hd cas cat`. */
export const casCat: Command = {
  name: "cas cat",
  summary: "print a stored file, chunk, directory listing or node",
  usage: "hd cas cat HASH|REF|ROOT:path",
  options: {},
  run(ctx) {
    const [text] = ctx.positionals;
    if (!text || ctx.positionals.length > 1) {
      throw new HdError("Cannot cat: expected one HASH", "usage: hd cas cat HASH|ROOT:path", 2);
    }
    const store = ctx.store(false);
    const r = resolveName(store, text);
    const catFile = (f: FileNode) => {
      if (ctx.out.json) return ctx.out.result(f, () => "");
      if ((f.mode & S_IFMT) === S_IFLNK) return ctx.out.line(f.target ?? "");
      for (const c of readFileChunks(store, f)) writeAll(c);
    };
    if (r.file) {
      catFile(r.file);
      return 0;
    }
    let bytes: Uint8Array | null = null;
    if (store.has(r.id)) bytes = store.getObject(r.id);
    else if (store.has(r.id, "manifests")) {
      const m = store.getManifest(r.id);
      if (ctx.out.json) ctx.out.result(m, () => "");
      else for (const c of m.chunks) writeAll(store.getObject(c));
      return 0;
    } else {
      throw new HdError(
        `Cannot cat ${text}: not in the store`,
        "check the hash with `hd cas stats` or `hd dag show`",
      );
    }
    if (!isNodeEncoding(bytes)) {
      if (ctx.out.json) ctx.out.result({ id: r.id, kind: "chunk", size: bytes.length }, () => "");
      else writeAll(bytes);
      return 0;
    }
    const node = getNode(store, r.id);
    if (node.type === "file") {
      catFile(node);
      return 0;
    }
    ctx.out.result({ id: r.id, ...decodeNode(bytes) }, () => {
      if (node.type !== "dir") return JSON.stringify(node, null, 2);
      return node.entries.map((e) =>
        e.dir !== undefined
          ? `dir   ${e.dir.slice(0, 12)}  ${e.name}/`
          : `${
            ((e.file.mode & S_IFMT) === S_IFLNK ? "link" : (e.file.mode & 0o7777).toString(8))
              .padEnd(5)
          } ${String(e.file.size).padStart(12)}  ${e.name}${
            e.file.target !== undefined ? ` -> ${e.file.target}` : ""
          }`
      ).join("\n");
    });
    return 0;
  },
};
