/**
 * Pack files: many small objects in one file, as restic and git do, so that adding a tree of tens
 * of thousands of small files creates a few files instead of tens of thousands.
 *
 * Format (version 1), `packs/<64 hex>.pack`, where the name is BLAKE3 of the index bytes:
 * ```
 * "HDP1"                                  magic
 * entry*                                  each: the stored object bytes (codec byte + payload)
 * index: count × 45 bytes, sorted by (kind, id):
 *   kind u8 (0 object, 1 manifest) | id 32 bytes | offset u64 BE | length u32 BE
 * trailer (16 bytes): index offset u64 BE | count u32 BE | "HDPI"
 * ```
 * A pack is written to a temp file and renamed into place complete, so readers never see a partial
 * pack. Placement (not part of the format): a batch writes its metadata (Dir and other nodes,
 * manifests) together after its chunks, newest first, so a cold walk of a tree from its root reads
 * one stretch of the pack; a gc rewrite keeps the entries in their old order. Each entry is verified on read exactly like a loose object (BLAKE3 of the decoded bytes).
 *
 * @example
 * ```ts
 * import { PackBuilder, parsePackIndex } from "./pack.ts";
 * import { encodeObject } from "./compress.ts";
 * import { blake3Hex } from "./hash.ts";
 * const data = new TextEncoder().encode("one object");
 * const b = new PackBuilder();
 * b.add("objects", blake3Hex(data), encodeObject(data));
 * const { name, bytes, entries } = b.finish(); // name: BLAKE3 of the index
 * const tv = new DataView(bytes.buffer, bytes.length - 16);
 * const indexOffset = Number(tv.getBigUint64(0));
 * const index = bytes.subarray(indexOffset, bytes.length - 16);
 * console.log(name, parsePackIndex(index, indexOffset)[0].offset === entries[0].offset); // true
 * ```
 * @module
 */
import { blake3Hex, fromHex, toHex } from "./hash.ts";
import { type ObjectKey, objectKey, type ObjectKind } from "./key.ts";

/** Bytes of one index entry. */
export const INDEX_ENTRY = 45;
/** Bytes of the trailer. */
export const TRAILER = 16;
const MAGIC = [0x48, 0x44, 0x50, 0x31]; // HDP1
const IMAGIC = [0x48, 0x44, 0x50, 0x49]; // HDPI

/** Where an object sits in a pack. */
export interface PackEntry {
  kind: ObjectKind;
  id: string;
  offset: number;
  length: number;
}

/** Collects stored objects in memory and produces a pack file's bytes. */
export class PackBuilder {
  #parts: Uint8Array[] = [new Uint8Array(MAGIC)];
  #size = 4;
  #entries: PackEntry[] = [];
  #pending = new Map<ObjectKey, Uint8Array>();

  /** Bytes collected so far. */
  get size(): number {
    return this.#size;
  }

  /** Number of objects collected. */
  get count(): number {
    return this.#entries.length;
  }

  /** The stored bytes of a pending object or manifest, or undefined. */
  pending(key: ObjectKey): Uint8Array | undefined {
    return this.#pending.get(key);
  }

  /** Adds an object's stored bytes (codec byte + payload). Duplicates are ignored. */
  add(kind: ObjectKind, id: string, stored: Uint8Array): void {
    const key = objectKey(kind, id);
    if (this.#pending.has(key)) return;
    this.#pending.set(key, stored);
    this.#entries.push({ kind, id, offset: this.#size, length: stored.length });
    this.#parts.push(stored);
    this.#size += stored.length;
  }

  /** The pack file's bytes and its name (BLAKE3 of the index). */
  finish(): { name: string; bytes: Uint8Array; entries: PackEntry[] } {
    const { index, trailer, sorted } = indexBytes(this.#entries, this.#size);
    const bytes = new Uint8Array(this.#size + index.length + TRAILER);
    let p = 0;
    for (const part of this.#parts) (bytes.set(part, p), p += part.length);
    bytes.set(index, p);
    bytes.set(trailer, p + index.length);
    return { name: blake3Hex(index), bytes, entries: sorted };
  }
}

/** Bytes a {@link PackStream} buffers before it writes them to its file. */
export const STREAM_BUFFER = 1 << 20;

/**
 * A pack written as it is collected: stored objects are appended to a temp file through a
 * {@link STREAM_BUFFER}-byte buffer, so a batch holds only the index entries in memory, not the
 * pack's bytes (a cold add of a large tree would otherwise keep up to a pack's worth of small
 * buffers alive, and copy them once more to write the pack). The temp file becomes
 * `packs/<name>.pack` by rename in {@link finish}; {@link abort} removes it.
 */
export class PackStream {
  readonly #tmpPath: string;
  #file: Deno.FsFile | null = null;
  #reader: Deno.FsFile | null = null;
  #buf = new Uint8Array(STREAM_BUFFER);
  #bufLen = 0;
  /** File offset of #buf[0]. */
  #bufStart = 0;
  #size = 4;
  #entries: PackEntry[] = [];
  #at = new Map<ObjectKey, number>();
  /** Metadata objects held back for the pack's tail: entry index and stored bytes. */
  #meta: { i: number; bytes: Uint8Array }[] = [];
  #metaAt = new Map<number, Uint8Array>();
  #metaSize = 0;

  /** A pack to be written at `tmpPath` (created on the first add). */
  constructor(tmpPath: string) {
    this.#tmpPath = tmpPath;
    this.#buf.set(MAGIC);
    this.#bufLen = 4;
  }

  /** Bytes collected so far (metadata held back included). */
  get size(): number {
    return this.#size + this.#metaSize;
  }

  /** Number of objects collected. */
  get count(): number {
    return this.#entries.length;
  }

  /** Bytes of metadata objects held back for the pack's tail. */
  get metaSize(): number {
    return this.#metaSize;
  }

  /** True when the pack holds `key`. */
  has(key: ObjectKey): boolean {
    return this.#at.has(key);
  }

  /** A copy of the stored bytes of a collected object or manifest, or undefined. */
  pending(key: ObjectKey): Uint8Array | undefined {
    const i = this.#at.get(key);
    if (i === undefined) return undefined;
    const held = this.#metaAt.get(i);
    if (held) return held.slice();
    const e = this.#entries[i];
    if (e.offset >= this.#bufStart) {
      const o = e.offset - this.#bufStart;
      return this.#buf.slice(o, o + e.length);
    }
    const out = new Uint8Array(e.length);
    this.#reader ??= Deno.openSync(this.#tmpPath, { read: true });
    readAt(this.#reader, out, e.offset);
    return out;
  }

  /**
   * Adds an object's stored bytes (codec byte + payload). Duplicates are ignored. A `meta` object
   * (a tree's Dir node, a manifest) is held in memory and written with the other metadata at the
   * pack's tail, in the reverse order of adding (a tree is written children first, so a walk from
   * its root reads that section forward): a cold walk of the tree then reads one contiguous
   * stretch of the pack instead of pages scattered between file chunks. The format is unchanged
   * (an entry's offset may be anywhere in the data section).
   */
  add(kind: ObjectKind, id: string, stored: Uint8Array, meta = false): void {
    const key = objectKey(kind, id);
    if (this.#at.has(key)) return;
    const i = this.#entries.length;
    this.#at.set(key, i);
    if (meta) {
      const bytes = stored.slice();
      this.#entries.push({ kind, id, offset: -1, length: bytes.length });
      this.#meta.push({ i, bytes });
      this.#metaAt.set(i, bytes);
      this.#metaSize += bytes.length;
      return;
    }
    this.#entries.push({ kind, id, offset: this.#size, length: stored.length });
    this.#append(stored);
  }

  #append(b: Uint8Array): void {
    if (this.#bufLen + b.length > this.#buf.length) this.#drain();
    if (b.length >= this.#buf.length) {
      this.#write(b);
      this.#bufStart += b.length;
    } else {
      this.#buf.set(b, this.#bufLen);
      this.#bufLen += b.length;
    }
    this.#size += b.length;
  }

  #write(b: Uint8Array): void {
    this.#file ??= openNew(this.#tmpPath);
    let off = 0;
    while (off < b.length) off += this.#file.writeSync(b.subarray(off));
  }

  #drain(): void {
    this.#write(this.#buf.subarray(0, this.#bufLen));
    this.#bufStart += this.#bufLen;
    this.#bufLen = 0;
  }

  /**
   * Writes the index and trailer and renames the file to `dest(name)` (name: BLAKE3 of the index,
   * as {@link PackBuilder.finish}); returns the name and the entries, sorted as in the index.
   */
  finish(dest: (name: string) => string): { name: string; entries: PackEntry[] } {
    for (let k = this.#meta.length - 1; k >= 0; k--) {
      const { i, bytes } = this.#meta[k];
      this.#entries[i].offset = this.#size;
      this.#append(bytes);
    }
    this.#meta = [];
    this.#metaAt.clear();
    this.#metaSize = 0;
    const { index, trailer, sorted } = indexBytes(this.#entries, this.#size);
    this.#append(index);
    this.#append(trailer);
    this.#drain();
    this.#close();
    const name = blake3Hex(index);
    const to = dest(name);
    try {
      Deno.renameSync(this.#tmpPath, to);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      Deno.mkdirSync(to.slice(0, to.lastIndexOf("/")), { recursive: true });
      Deno.renameSync(this.#tmpPath, to);
    }
    return { name, entries: sorted };
  }

  /** Closes and removes the temp file (what was collected is dropped). */
  abort(): void {
    this.#close();
    try {
      Deno.removeSync(this.#tmpPath);
    } catch { /* never created, or already renamed */ }
  }

  #close(): void {
    this.#file?.close();
    this.#reader?.close();
    this.#file = this.#reader = null;
  }
}

/** Creates a new file for writing (and its directory, when missing). */
function openNew(path: string): Deno.FsFile {
  try {
    return Deno.openSync(path, { write: true, createNew: true });
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    Deno.mkdirSync(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    return Deno.openSync(path, { write: true, createNew: true });
  }
}

/** The index (entries sorted by kind then id) and trailer of a pack whose data ends at `size`. */
function indexBytes(
  entries: PackEntry[],
  size: number,
): { index: Uint8Array; trailer: Uint8Array; sorted: PackEntry[] } {
  const sorted = [...entries].sort((a, b) =>
    a.kind !== b.kind ? (a.kind === "objects" ? -1 : 1) : a.id < b.id ? -1 : a.id > b.id ? 1 : 0
  );
  const index = new Uint8Array(sorted.length * INDEX_ENTRY);
  const dv = new DataView(index.buffer);
  sorted.forEach((e, i) => {
    const o = i * INDEX_ENTRY;
    index[o] = e.kind === "objects" ? 0 : 1;
    index.set(fromHex(e.id), o + 1);
    dv.setBigUint64(o + 33, BigInt(e.offset));
    dv.setUint32(o + 41, e.length);
  });
  const trailer = new Uint8Array(TRAILER);
  const tv = new DataView(trailer.buffer);
  tv.setBigUint64(0, BigInt(size));
  tv.setUint32(8, sorted.length);
  trailer.set(IMAGIC, 12);
  return { index, trailer, sorted };
}

/** Reads a pack's trailer and index from an open file; throws on a malformed pack. */
export function readPackIndex(file: Deno.FsFile, fileSize: number): PackEntry[] {
  if (fileSize < 4 + TRAILER) throw new Error("Cannot read pack: too short");
  const trailer = new Uint8Array(TRAILER);
  readAt(file, trailer, fileSize - TRAILER);
  for (let i = 0; i < 4; i++) {
    if (trailer[12 + i] !== IMAGIC[i]) throw new Error("Cannot read pack: bad trailer magic");
  }
  const tv = new DataView(trailer.buffer);
  const indexOffset = Number(tv.getBigUint64(0));
  const count = tv.getUint32(8);
  if (indexOffset + count * INDEX_ENTRY + TRAILER !== fileSize) {
    throw new Error("Cannot read pack: index does not fit the file");
  }
  const index = new Uint8Array(count * INDEX_ENTRY);
  readAt(file, index, indexOffset);
  return parsePackIndex(index, indexOffset);
}

/** Parses index bytes; every entry must lie inside the data section. */
export function parsePackIndex(index: Uint8Array, dataEnd: number): PackEntry[] {
  const dv = new DataView(index.buffer, index.byteOffset, index.byteLength);
  const out: PackEntry[] = [];
  for (let o = 0; o < index.length; o += INDEX_ENTRY) {
    const kind: ObjectKind = index[o] === 0 ? "objects" : "manifests";
    const offset = Number(dv.getBigUint64(o + 33));
    const length = dv.getUint32(o + 41);
    if (offset < 4 || offset + length > dataEnd) {
      throw new Error("Cannot read pack: entry out of range");
    }
    out.push({ kind, id: toHex(index.subarray(o + 1, o + 33)), offset, length });
  }
  return out;
}

/** Reads exactly `buf.length` bytes at `offset`. */
export function readAt(file: Deno.FsFile, buf: Uint8Array, offset: number): void {
  file.seekSync(offset, Deno.SeekMode.Start);
  let got = 0;
  while (got < buf.length) {
    const n = file.readSync(buf.subarray(got));
    if (n === null || n === 0) throw new Error("Cannot read pack: unexpected end of file");
    got += n;
  }
}
