/**
 * The five node types of the Merkle DAG and their canonical, versioned encoding.
 *
 * Every encoding starts with "hd", a version byte (1) and a kind byte, followed by tagged fields
 * in increasing tag order (absent optional fields are omitted). A node's id is BLAKE3 of its
 * encoding. Dir nodes embed the encodings of their File children (as git trees embed modes and
 * blob ids), so a file costs no object of its own; subdirectories are referenced by id.
 * Nodes carry no path: the name of a child lives in its parent, so equal subtrees share one id
 * wherever they sit, and moving a directory rehashes only the directories above it.
 *
 * @example
 * ```ts
 * import { encodeNode, decodeNode, nodeId, type FileNode } from "./node.ts";
 * const f: FileNode = { type: "file", mode: 0o100644, size: 0, chunks: [] };
 * decodeNode(encodeNode(f)); nodeId(f);
 * ```
 * @module
 */
import { blake3Hex } from "../cas/hash.ts";
import { ByteReader, ByteWriter, DecodeError } from "./encoding.ts";

/** A file, symlink or special file: mode (with type bits) and content. */
export interface FileNode {
  type: "file";
  /** Full st_mode including the type bits (S_IFREG, S_IFLNK, …). */
  mode: number;
  /** Size in bytes (for a symlink, the length of its target). */
  size: number;
  /** Chunk ids, inline when the file has at most {@link INLINE_CHUNKS} chunks. */
  chunks?: string[];
  /** Id of a stored manifest, for larger files. */
  manifest?: string;
  /** Target of a symlink. */
  target?: string;
  /** Owner, when kept (image layers). */
  uid?: number;
  /** Group, when kept (image layers). */
  gid?: number;
  /** Modification time in seconds, when kept (image layers). */
  mtime?: number;
  /** Device number of a character or block device. */
  rdev?: number;
  /**
   * Extended attributes (image layers: `security.capability`, `user.*`, …), sorted by the UTF-8
   * bytes of the name; absent when there are none.
   */
  xattrs?: [string, Uint8Array][];
  /**
   * Hardlink group (image layers): the entries of one layer whose File nodes carry the same group
   * were one inode in the layer's tar (a hardlink is the same File node twice) and are written as
   * one again. Numbered from 1 in the order of the tar; absent for a file with one name.
   */
  link?: number;
}

/** One entry of a directory: a subdirectory by id, or an embedded file. */
export type DirEntry =
  | { name: string; dir: string; file?: undefined }
  | { name: string; file: FileNode; dir?: undefined };

/** A directory: sorted entries (by UTF-8 bytes of the name). */
export interface DirNode {
  type: "dir";
  mode: number;
  entries: DirEntry[];
  uid?: number;
  gid?: number;
  mtime?: number;
  /** Extended attributes, as on {@link FileNode}. */
  xattrs?: [string, Uint8Array][];
}

/** A resolved dependency. */
export interface PackageNode {
  type: "package";
  provider: string;
  name: string;
  version: string;
  /** Integrity string or artifact id. */
  artifact: string;
  /** Where the artifact comes from (URL or path), when known. */
  resolved?: string;
}

/** A build step: its command and the ids of what it reads. */
export interface BuildStepNode {
  type: "buildstep";
  command: string;
  /** Declared inputs in order: a label (path, glob, "previous", "base") and an id. */
  inputs: { label: string; id: string }[];
  /** Environment variables, sorted by name. */
  env: [string, string][];
  /** Declared output paths. */
  outputs: string[];
  /** Cache directories kept outside the layer. */
  cache: string[];
}

/** An environment: a name and its ordered children (files, packages, steps, base). */
export interface EnvNode {
  type: "env";
  name: string;
  children: { role: string; id: string }[];
}

/** Any DAG node. */
export type Node = FileNode | DirNode | PackageNode | BuildStepNode | EnvNode;

/** Files with at most this many chunks keep their chunk list inline instead of a manifest. */
export const INLINE_CHUNKS = 8;

/** Encoding version written by this code. */
export const NODE_VERSION = 1;

const KIND = { file: 1, dir: 2, package: 3, buildstep: 4, env: 5 } as const;
const te = new TextEncoder();

/** Compares two strings by their UTF-8 bytes (the canonical entry order). */
export function compareNames(a: string, b: string): number {
  if (a === b) return 0;
  // UTF-16 code-unit order equals UTF-8 byte order unless a surrogate (>= 0xD800) is involved.
  const n0 = Math.min(a.length, b.length);
  let i0 = 0;
  while (i0 < n0 && a.charCodeAt(i0) === b.charCodeAt(i0)) i0++;
  const ca = i0 < a.length ? a.charCodeAt(i0) : -1;
  const cb = i0 < b.length ? b.charCodeAt(i0) : -1;
  if (ca < 0xd800 && cb < 0xd800) return ca - cb;
  const ea = te.encode(a);
  const eb = te.encode(b);
  const n = Math.min(ea.length, eb.length);
  for (let i = 0; i < n; i++) if (ea[i] !== eb[i]) return ea[i] - eb[i];
  return ea.length - eb.length;
}

function header(w: ByteWriter, kind: number): void {
  w.u8(0x68);
  w.u8(0x64);
  w.u8(NODE_VERSION);
  w.u8(kind);
}

function writeMeta(w: ByteWriter, n: { uid?: number; gid?: number; mtime?: number }): void {
  if (n.uid !== undefined) (w.u8(20), w.varint(n.uid));
  if (n.gid !== undefined) (w.u8(21), w.varint(n.gid));
  if (n.mtime !== undefined) (w.u8(22), w.svarint(n.mtime));
}

/** Largest xattr value kept (Linux's own limit, XATTR_SIZE_MAX). */
export const XATTR_VALUE_MAX = 64 * 1024;

/** The xattrs sorted canonically; throws on a duplicate name. */
export function sortXattrs(x: [string, Uint8Array][]): [string, Uint8Array][] {
  const s = [...x].sort((a, b) => compareNames(a[0], b[0]));
  for (let i = 1; i < s.length; i++) {
    if (s[i - 1][0] === s[i][0]) {
      throw new Error(`Cannot encode node: xattr "${s[i][0]}" appears twice`);
    }
  }
  return s;
}

/** Tag 7: count, then (name, value) pairs in canonical order. Omitted when there are none. */
function writeXattrs(w: ByteWriter, x: [string, Uint8Array][] | undefined): void {
  if (x === undefined || x.length === 0) return;
  w.u8(7), w.varint(x.length);
  for (const [k, v] of sortXattrs(x)) (w.str(k), w.bytes(v));
}

function readXattrs(r: ByteReader, n: { xattrs?: [string, Uint8Array][] }): void {
  if (r.done || r.peek() !== 7) return;
  r.u8();
  const count = r.count(2);
  if (count === 0) throw new DecodeError("empty xattr field");
  const x: [string, Uint8Array][] = [];
  for (let i = 0; i < count; i++) {
    const k = r.str();
    if (x.length && compareNames(x[x.length - 1][0], k) >= 0) {
      throw new DecodeError(`xattrs not sorted/unique at "${k}"`);
    }
    x.push([k, r.bytes().slice()]);
  }
  n.xattrs = x;
}

function writeFileBody(w: ByteWriter, f: FileNode): void {
  w.u8(1), w.varint(f.mode);
  w.u8(2), w.varint(f.size);
  if (f.chunks !== undefined) {
    w.u8(3), w.varint(f.chunks.length);
    for (const c of f.chunks) w.id(c);
  }
  if (f.manifest !== undefined) (w.u8(4), w.id(f.manifest));
  if (f.target !== undefined) (w.u8(5), w.str(f.target));
  if (f.rdev !== undefined) (w.u8(6), w.varint(f.rdev));
  writeXattrs(w, f.xattrs);
  writeMeta(w, f);
  if (f.link !== undefined) (w.u8(23), w.varint(f.link));
}

/** Canonical bytes of a File node (without the node header, as embedded in a Dir). */
export function encodeFileBody(f: FileNode): Uint8Array {
  const w = new ByteWriter();
  writeFileBody(w, f);
  return w.finish();
}

/** Canonical bytes of any node. Dir entries must already be sorted and unique. */
export function encodeNode(n: Node): Uint8Array {
  const w = new ByteWriter();
  header(w, KIND[n.type]);
  switch (n.type) {
    case "file":
      writeFileBody(w, n);
      break;
    case "dir": {
      w.u8(1), w.varint(n.mode);
      w.u8(2), w.varint(n.entries.length);
      let prev: string | null = null;
      for (const e of n.entries) {
        if (prev !== null && compareNames(prev, e.name) >= 0) {
          throw new Error(`Cannot encode directory: entries not sorted/unique at "${e.name}"`);
        }
        prev = e.name;
        w.str(e.name);
        if (e.dir !== undefined) (w.u8(0x64), w.id(e.dir));
        else (w.u8(0x66), w.bytes(encodeFileBody(e.file)));
      }
      writeXattrs(w, n.xattrs);
      writeMeta(w, n);
      break;
    }
    case "package":
      w.u8(1), w.str(n.provider);
      w.u8(2), w.str(n.name);
      w.u8(3), w.str(n.version);
      w.u8(4), w.str(n.artifact);
      if (n.resolved !== undefined) (w.u8(5), w.str(n.resolved));
      break;
    case "buildstep":
      w.u8(1), w.str(n.command);
      w.u8(2), w.varint(n.inputs.length);
      for (const i of n.inputs) (w.str(i.label), w.id(i.id));
      w.u8(3), w.varint(n.env.length);
      for (const [k, v] of [...n.env].sort((a, b) => compareNames(a[0], b[0]))) {
        (w.str(k), w.str(v));
      }
      w.u8(4), w.varint(n.outputs.length);
      for (const o of n.outputs) w.str(o);
      w.u8(5), w.varint(n.cache.length);
      for (const c of n.cache) w.str(c);
      break;
    case "env":
      w.u8(1), w.str(n.name);
      w.u8(2), w.varint(n.children.length);
      for (const c of n.children) (w.str(c.role), w.id(c.id));
      break;
  }
  return w.finish();
}

function readMeta(r: ByteReader, n: { uid?: number; gid?: number; mtime?: number }): void {
  if (r.peek() === 20) (r.u8(), n.uid = r.varint());
  if (r.peek() === 21) (r.u8(), n.gid = r.varint());
  if (r.peek() === 22) (r.u8(), n.mtime = r.svarint());
}

function expect(r: ByteReader, tag: number): void {
  const t = r.u8();
  if (t !== tag) throw new DecodeError(`expected field ${tag}, found ${t}`);
}

function readFileBody(r: ByteReader): FileNode {
  expect(r, 1);
  const f: FileNode = { type: "file", mode: r.varint(), size: 0 };
  expect(r, 2);
  f.size = r.varint();
  if (r.peek() === 3) {
    r.u8();
    const n = r.count(32);
    f.chunks = [];
    for (let i = 0; i < n; i++) f.chunks.push(r.id());
  }
  if (r.peek() === 4) (r.u8(), f.manifest = r.id());
  if (r.peek() === 5) (r.u8(), f.target = r.str());
  if (r.peek() === 6) (r.u8(), f.rdev = r.varint());
  readXattrs(r, f);
  readMeta(r, f);
  if (!r.done && r.peek() === 23) {
    r.u8();
    f.link = r.varint();
    if (f.link === 0) throw new DecodeError("hardlink group 0");
  }
  return f;
}

/** Decodes the embedded body of a File node. */
export function decodeFileBody(b: Uint8Array): FileNode {
  // Throws DecodeError like decodeNode.
  const r = new ByteReader(b);
  const f = readFileBody(r);
  if (!r.done) throw new DecodeError("trailing bytes in a file entry");
  return f;
}

/** True when the bytes start with a node header (so they are a node, not a chunk). */
export function isNodeEncoding(b: Uint8Array): boolean {
  return b.length >= 4 && b[0] === 0x68 && b[1] === 0x64 && b[2] === NODE_VERSION &&
    b[3] >= 1 && b[3] <= 5;
}

/**
 * Parses node bytes; throws a {@link DecodeError} (`Cannot decode node: …`) on anything malformed
 * and on counts the remaining bytes cannot hold, so no count sizes an allocation.
 */
export function decodeNode(b: Uint8Array): Node {
  if (!isNodeEncoding(b)) throw new DecodeError("not a version-1 hd node");
  const r = new ByteReader(b.subarray(4));
  let n: Node;
  switch (b[3]) {
    case KIND.file:
      n = readFileBody(r);
      break;
    case KIND.dir: {
      expect(r, 1);
      const mode = r.varint();
      expect(r, 2);
      const count = r.count(3);
      const entries: DirEntry[] = [];
      for (let i = 0; i < count; i++) {
        const name = r.str();
        const t = r.u8();
        if (t === 0x64) entries.push({ name, dir: r.id() });
        else if (t === 0x66) entries.push({ name, file: decodeFileBody(r.bytes()) });
        else throw new DecodeError(`bad entry tag ${t}`);
      }
      const d: DirNode = { type: "dir", mode, entries };
      readXattrs(r, d);
      readMeta(r, d);
      n = d;
      break;
    }
    case KIND.package: {
      expect(r, 1);
      const provider = r.str();
      expect(r, 2);
      const name = r.str();
      expect(r, 3);
      const version = r.str();
      expect(r, 4);
      const p: PackageNode = { type: "package", provider, name, version, artifact: r.str() };
      if (r.peek() === 5) (r.u8(), p.resolved = r.str());
      n = p;
      break;
    }
    case KIND.buildstep: {
      expect(r, 1);
      const command = r.str();
      expect(r, 2);
      const inputs = Array.from({ length: r.count(33) }, () => ({ label: r.str(), id: r.id() }));
      expect(r, 3);
      const env = Array.from({ length: r.count(2) }, () => [r.str(), r.str()] as [string, string]);
      expect(r, 4);
      const outputs = Array.from({ length: r.count() }, () => r.str());
      expect(r, 5);
      const cache = Array.from({ length: r.count() }, () => r.str());
      n = { type: "buildstep", command, inputs, env, outputs, cache };
      break;
    }
    default: {
      expect(r, 1);
      const name = r.str();
      expect(r, 2);
      const children = Array.from({ length: r.count(33) }, () => ({ role: r.str(), id: r.id() }));
      n = { type: "env", name, children };
    }
  }
  if (!r.done) throw new DecodeError("trailing bytes");
  return n;
}

/** Id of a node: BLAKE3 of its encoding. */
export function nodeId(n: Node): string {
  return blake3Hex(encodeNode(n));
}

/** Ids a node refers to, split by where they live in the store. */
export function nodeReferences(n: Node): { objects: string[]; manifests: string[] } {
  const objects: string[] = [];
  const manifests: string[] = [];
  const file = (f: FileNode) => {
    if (f.chunks) objects.push(...f.chunks);
    if (f.manifest) manifests.push(f.manifest);
  };
  switch (n.type) {
    case "file":
      file(n);
      break;
    case "dir":
      for (const e of n.entries) e.dir !== undefined ? objects.push(e.dir) : file(e.file);
      break;
    case "buildstep":
      for (const i of n.inputs) objects.push(i.id);
      break;
    case "env":
      for (const c of n.children) objects.push(c.id);
      break;
  }
  return { objects, manifests };
}
