/**
 * A deterministic tar writer for layer trees of the CAS: the tree is walked depth-first with
 * entries in the order the Dir nodes keep them (sorted by UTF-8 bytes), every mtime is one fixed
 * value (`SOURCE_DATE_EPOCH`'s role: 0 unless given), owners, modes (setuid/setgid/sticky too),
 * symlinks, device numbers and extended attributes (pax `SCHILY.xattr.<name>`, raw bytes) are kept,
 * and whiteouts stay what they are in a layer tree: `.wh.NAME` and `.wh..wh..opq` files. Names or
 * link targets that do not fit ustar (over 100 bytes, non-ASCII) and large owners or sizes go in
 * pax records. The same tree and epoch always give the same bytes.
 *
 * Hardlinks: the entries of a tree that carry the same link group (FileNode.link: an image
 * layer's hardlinks, recorded by src/oci/unpack.ts, and a build step's, recorded by its capture)
 * are written as hardlinks to the first path of the group. A tree stored before link groups were
 * recorded falls back to the older rule: a non-empty regular file whose node has an `mtime` (an
 * image layer's) and equals an earlier one is linked to it; nodes without an mtime and without a
 * group (project files) are never linked.
 *
 * @example
 * ```ts
 * import { layerTar } from "./tar_write.ts";
 * import type { Store } from "../cas/store.ts";
 * declare const store: Store;
 * declare const treeId: string;
 * for (const piece of layerTar(store, treeId, { mtime: 0 })) console.log(piece.length);
 * ```
 * @module
 */
import type { Store } from "../cas/store.ts";
import { getNode, readFileChunks } from "../dag/dag.ts";
import { hardlinkKey } from "../dag/checkout.ts";
import type { DirNode, FileNode } from "../dag/node.ts";
import { S_IFBLK, S_IFCHR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG } from "../sys/mode.ts";
import { HdError } from "../sys/errors.ts";

const te = new TextEncoder();
const BLOCK = 512;
const ZERO = new Uint8Array(BLOCK * 2);

/** Options of {@link layerTar}. */
export interface TarWriteOptions {
  /** The mtime of every entry, in seconds (default 0). */
  mtime?: number;
  /** A prefix for every path (e.g. `app/` to place a tree at /app); its dirs are not written. */
  prefix?: string;
}

/** One pax record `<len> <key>=<value>\n` (the length counts its own digits). */
export function paxRecord(key: string, value: Uint8Array | string): Uint8Array {
  const v = typeof value === "string" ? te.encode(value) : value;
  const k = te.encode(` ${key}=`);
  const base = k.length + v.length + 1;
  let len = base + String(base).length;
  if (String(len).length !== String(base).length) len = base + String(len).length;
  const out = new Uint8Array(len);
  const head = te.encode(String(len));
  out.set(head, 0);
  out.set(k, head.length);
  out.set(v, head.length + k.length);
  out[len - 1] = 0x0a;
  return out;
}

function octal(b: Uint8Array, off: number, len: number, n: number): void {
  b.set(te.encode(n.toString(8).padStart(len - 1, "0")), off);
}

const MAX_OCTAL7 = 0o7777777;
const MAX_OCTAL11 = 0o77777777777;

// deno-lint-ignore no-control-regex
const ASCII = /^[\x01-\x7f]*$/;

interface Entry {
  path: string;
  flag: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  link: string;
  devmajor: number;
  devminor: number;
  xattrs?: [string, Uint8Array][];
}

/** The header blocks (pax header when needed, then ustar) of one entry. */
export function entryHeader(e: Entry, mtime: number): Uint8Array {
  const pax: Uint8Array[] = [];
  const nameB = te.encode(e.path);
  const linkB = te.encode(e.link);
  if (nameB.length > 100 || !ASCII.test(e.path)) pax.push(paxRecord("path", e.path));
  if (linkB.length > 100 || !ASCII.test(e.link)) pax.push(paxRecord("linkpath", e.link));
  if (e.uid > MAX_OCTAL7) pax.push(paxRecord("uid", String(e.uid)));
  if (e.gid > MAX_OCTAL7) pax.push(paxRecord("gid", String(e.gid)));
  if (e.size > MAX_OCTAL11) pax.push(paxRecord("size", String(e.size)));
  for (const [k, v] of e.xattrs ?? []) pax.push(paxRecord(`SCHILY.xattr.${k}`, v));
  const parts: Uint8Array[] = [];
  if (pax.length) {
    const body = concat(pax);
    const short = `PaxHeaders/${ascii(e.path)}`;
    parts.push(ustar({ ...e, path: short, flag: "x", size: body.length, link: "" }, mtime));
    parts.push(body, new Uint8Array((BLOCK - (body.length % BLOCK)) % BLOCK));
  }
  parts.push(ustar(e, mtime));
  return concat(parts);
}

function ascii(s: string): string {
  const a = s.replace(/[^\x20-\x7e]/g, "_");
  return a.length > 100 - 11 ? a.slice(a.length - 89) : a;
}

function ustar(e: Entry, mtime: number): Uint8Array {
  const b = new Uint8Array(BLOCK);
  const name = ascii(e.path).slice(0, 100);
  b.set(te.encode(name), 0);
  octal(b, 100, 8, e.mode & 0o7777);
  octal(b, 108, 8, Math.min(e.uid, MAX_OCTAL7));
  octal(b, 116, 8, Math.min(e.gid, MAX_OCTAL7));
  octal(b, 124, 12, Math.min(e.size, MAX_OCTAL11));
  octal(b, 136, 12, Math.max(0, Math.min(mtime, MAX_OCTAL11)));
  b.fill(0x20, 148, 156);
  b[156] = e.flag.charCodeAt(0);
  b.set(te.encode(ascii(e.link).slice(0, 100)), 157);
  b.set(te.encode("ustar\0"), 257);
  b.set(te.encode("00"), 263);
  octal(b, 329, 8, e.devmajor);
  octal(b, 337, 8, e.devminor);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += b[i];
  b.set(te.encode(sum.toString(8).padStart(6, "0") + "\0 "), 148);
  return b;
}

function concat(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) (out.set(p, o), o += p.length);
  return out;
}

/** glibc's major/minor of an st_rdev. */
export function splitDev(rdev: number): [number, number] {
  const hi = Math.floor(rdev / 0x100000000);
  const lo = rdev >>> 0;
  const major = ((lo >>> 8) & 0xfff) | ((hi & 0xfffff000) >>> 0);
  const minor = (lo & 0xff) | ((lo >>> 12) & 0xfffff00);
  return [major, minor];
}

function fileKey(f: FileNode): string {
  return JSON.stringify([
    f.mode,
    f.size,
    f.chunks ?? f.manifest,
    f.uid,
    f.gid,
    f.mtime,
    (f.xattrs ?? []).map(([k, v]) => [k, [...v]]),
  ]);
}

/**
 * The tar stream of layer tree `rootId`, in pieces (headers, file bodies chunk by chunk, the two
 * zero blocks at the end). The root directory itself is not written.
 */
export function* layerTar(
  store: Store,
  rootId: string,
  opts: TarWriteOptions = {},
): Generator<Uint8Array> {
  const mtime = opts.mtime ?? 0;
  const prefix = opts.prefix ?? "";
  const linked = new Map<string, string>();
  function* dir(id: string, at: string): Generator<Uint8Array> {
    const node = getNode(store, id);
    if (node.type !== "dir") {
      throw new HdError(`Cannot write layer ${rootId}: ${id} is not a directory`, "");
    }
    for (const e of (node as DirNode).entries) {
      const path = `${at}${e.name}`;
      if (e.dir !== undefined) {
        const d = getNode(store, e.dir) as DirNode;
        yield entryHeader({
          path: `${path}/`,
          flag: "5",
          mode: d.mode,
          uid: d.uid ?? 0,
          gid: d.gid ?? 0,
          size: 0,
          link: "",
          devmajor: 0,
          devminor: 0,
          xattrs: d.xattrs,
        }, mtime);
        yield* dir(e.dir, `${path}/`);
        continue;
      }
      const f = e.file;
      const type = f.mode & S_IFMT;
      const base = {
        path,
        mode: f.mode,
        uid: f.uid ?? 0,
        gid: f.gid ?? 0,
        link: "",
        size: 0,
        devmajor: 0,
        devminor: 0,
        xattrs: f.xattrs,
      };
      if (type === S_IFLNK) {
        yield entryHeader({ ...base, flag: "2", link: f.target ?? "" }, mtime);
      } else if (type === S_IFCHR || type === S_IFBLK) {
        const [major, minor] = splitDev(f.rdev ?? 0);
        yield entryHeader({
          ...base,
          flag: type === S_IFCHR ? "3" : "4",
          devmajor: major,
          devminor: minor,
        }, mtime);
      } else if (type === S_IFIFO) {
        yield entryHeader({ ...base, flag: "6" }, mtime);
      } else if (type === S_IFREG) {
        // a link group (a pulled layer's or a step's hardlink), else the older rule for trees
        // stored before groups were recorded: equal nodes with an mtime (an image layer's)
        const k = f.link !== undefined
          ? `link:${hardlinkKey(f)}`
          : f.mtime !== undefined && f.size > 0
          ? fileKey(f)
          : null;
        if (k !== null) {
          const first = linked.get(k);
          if (first !== undefined) {
            yield entryHeader({ ...base, flag: "1", link: first }, mtime);
            continue;
          }
          linked.set(k, path);
        }
        yield entryHeader({ ...base, flag: "0", size: f.size }, mtime);
        let n = 0;
        for (const c of readFileChunks(store, f)) (n += c.length, yield c);
        if (n !== f.size) {
          throw new HdError(
            `Cannot write layer ${rootId}: ${path} has ${n} bytes, its node says ${f.size}`,
            "run `hd cas verify`",
          );
        }
        const pad = (BLOCK - (n % BLOCK)) % BLOCK;
        if (pad) yield new Uint8Array(pad);
      }
    }
  }
  yield* dir(rootId, prefix);
  yield ZERO;
}
