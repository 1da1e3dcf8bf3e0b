/**
 * A streaming, push-style tar reader: ustar, pax extended headers (`path`, `linkpath`, `size`,
 * `uid`, `gid`, `mtime`, and extended attributes as `SCHILY.xattr.<name>` with raw bytes or
 * `LIBARCHIVE.xattr.<name>` with base64) and GNU long names (`L`, `K`), numbers in octal or
 * base-256.
 *
 * Written by hand instead of taking `tar-stream` or `modern-tar` from npm: those hand each entry's
 * body out as its own (async) stream, which costs a promise round-trip per piece and per entry;
 * unpacking a layer into the CAS wants the opposite — synchronous callbacks that feed bytes
 * straight into the chunker as they are decompressed, with no per-entry stream object. The reader
 * keeps at most one 512-byte header (or one pax/long-name body) buffered; entry bodies are passed
 * through as views of the pushed buffers, never copied. Measured on a 115 MB layer tar (5,317
 * entries) fed in 64 KiB pieces: this reader 12–19 ms, `tar-stream` 3.1.7 52–59 ms — both small
 * beside chunking and storing, so the deciding reasons are the synchronous feed and no dependency.
 *
 * @example
 * ```ts
 * import { TarReader } from "./tar.ts";
 * declare const tarBytes: Uint8Array;
 * const r = new TarReader({
 *   entry: (h) => console.log(h.type, h.path, h.size),
 *   data: (bytes) => {},
 *   end: () => {},
 * });
 * r.push(tarBytes);
 * r.finish();
 * ```
 * @module
 */

/** Kinds of tar entries hd understands. */
export type TarEntryType = "file" | "dir" | "symlink" | "hardlink" | "char" | "block" | "fifo";

/** One entry's header, after pax and GNU long-name records were applied. */
export interface TarHeader {
  /** Path as stored (not yet cleaned). */
  path: string;
  type: TarEntryType;
  /** Permission bits (including setuid/setgid/sticky). */
  mode: number;
  uid: number;
  gid: number;
  /** Modification time in whole seconds. */
  mtime: number;
  /** Bytes of content that follow (regular files only). */
  size: number;
  /** Target of a symlink or hardlink. */
  linkname: string;
  devmajor: number;
  devminor: number;
  /**
   * Extended attributes from pax records, as stored (names not yet checked), in record order;
   * absent when there are none.
   */
  xattrs?: [string, Uint8Array][];
}

/** Callbacks of a {@link TarReader}. */
export interface TarHandler {
  /** A new entry starts; its body (size bytes) follows through `data`. */
  entry(h: TarHeader): void;
  /** Body bytes of the current entry (a view, valid only during the call). */
  data(bytes: Uint8Array): void;
  /** The current entry's body is complete. */
  end(): void;
}

/** A malformed archive. */
export class TarError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TarError";
  }
}

const BLOCK = 512;
const dec = new TextDecoder("utf-8");

/** A NUL-terminated string field of a header. */
export function cstr(b: Uint8Array, off: number, len: number): string {
  let end = off;
  const max = off + len;
  while (end < max && b[end] !== 0) end++;
  return dec.decode(b.subarray(off, end));
}

/** A numeric header field (octal, or GNU base-256). */
export function num(b: Uint8Array, off: number, len: number): number {
  if (b[off] & 0x80) {
    // base-256 (GNU): big-endian two's complement, high bit of the first byte set.
    let n = b[off] & 0x7f;
    if (b[off] & 0x40) throw new TarError("negative base-256 number in a header");
    for (let i = 1; i < len; i++) n = n * 256 + b[off + i];
    return n;
  }
  let n = 0;
  let seen = false;
  for (let i = off; i < off + len; i++) {
    const c = b[i];
    if (c === 0) break;
    if (c === 0x20) {
      if (seen) break;
      continue;
    }
    if (c < 0x30 || c > 0x37) throw new TarError(`bad octal digit in a header field`);
    n = n * 8 + (c - 0x30);
    seen = true;
  }
  return n;
}

/** True when a header block's checksum matches. */
export function checksumOk(b: Uint8Array): boolean {
  const stored = num(b, 148, 8);
  let u = 0;
  let s = 0;
  for (let i = 0; i < BLOCK; i++) {
    const c = i >= 148 && i < 156 ? 0x20 : b[i];
    u += c;
    s += c > 127 ? c - 256 : c;
  }
  return stored === u || stored === s;
}

/** The records of a pax extended header body, values as raw bytes (views of `body`). */
export function parsePaxRecords(body: Uint8Array): [string, Uint8Array][] {
  const out: [string, Uint8Array][] = [];
  let p = 0;
  while (p < body.length) {
    let sp = p;
    while (sp < body.length && body[sp] !== 0x20) sp++;
    const len = parseInt(dec.decode(body.subarray(p, sp)), 10);
    if (!Number.isFinite(len) || len <= 0 || p + len > body.length || sp >= p + len) {
      throw new TarError("bad pax extended header record");
    }
    const end = p + len - 1; // drop trailing \n
    let eq = sp + 1;
    while (eq < end && body[eq] !== 0x3d) eq++;
    if (eq < end && eq > sp + 1) {
      out.push([dec.decode(body.subarray(sp + 1, eq)), body.subarray(eq + 1, end)]);
    }
    p += len;
  }
  return out;
}

/** The records of a pax extended header body. */
export function parsePax(body: Uint8Array): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of parsePaxRecords(body)) out.set(k, dec.decode(v));
  return out;
}

const SCHILY = "SCHILY.xattr.";
const LIBARCHIVE = "LIBARCHIVE.xattr.";

function base64(s: string): Uint8Array {
  try {
    // libarchive writes base64 without padding.
    const t = s.replace(/=+$/, "");
    const bin = atob(t + "=".repeat((4 - (t.length % 4)) % 4));
    return Uint8Array.from(bin, (c) => c.charCodeAt(0));
  } catch {
    throw new TarError(`bad base64 in a LIBARCHIVE.xattr record`);
  }
}

/** Splits a pax header's records into plain ones and extended attributes (by name). */
function splitPax(
  body: Uint8Array,
  plain: Map<string, string>,
  xattrs: Map<string, Uint8Array>,
): void {
  for (const [k, v] of parsePaxRecords(body)) {
    if (k.startsWith(SCHILY)) xattrs.set(k.slice(SCHILY.length), v.slice());
    else if (k.startsWith(LIBARCHIVE)) {
      let name: string;
      try {
        name = decodeURIComponent(k.slice(LIBARCHIVE.length));
      } catch {
        throw new TarError(`bad name in the pax record "${k}"`);
      }
      // SCHILY (raw bytes) wins when an archive carries both forms.
      if (!xattrs.has(name)) xattrs.set(name, base64(dec.decode(v)));
    } else plain.set(k, dec.decode(v));
  }
}

/**
 * A numeric pax record: decimal digits (for `mtime`, a sign and a fraction too, dropped), as a safe
 * integer; anything else is a TarError (`Number("abc")` would be NaN, `Number("-5")` a negative
 * owner).
 */
export function paxNumber(v: string, key: string): number {
  const ok = key === "mtime" ? /^-?\d+(\.\d*)?$/.test(v) : /^\d+$/.test(v);
  const n = ok ? Math.floor(Number(v)) : NaN;
  if (!Number.isSafeInteger(n)) {
    throw new TarError(`bad pax ${key} "${v.length > 40 ? v.slice(0, 40) + "…" : v}"`);
  }
  return n;
}

const TYPES: Record<string, TarEntryType> = {
  "0": "file",
  "\0": "file",
  "7": "file",
  "1": "hardlink",
  "2": "symlink",
  "3": "char",
  "4": "block",
  "5": "dir",
  "6": "fifo",
};

/** Parses a tar stream pushed to it piece by piece, calling a {@link TarHandler}. */
export class TarReader {
  #h: TarHandler;
  #hdr = new Uint8Array(BLOCK);
  #hdrHave = 0;
  /** Body bytes of the current entry still to come. */
  #remaining = 0;
  /** Padding bytes to skip after the body. */
  #pad = 0;
  /** Collecting a meta body (pax / long name) instead of passing data through. */
  #meta: { kind: string; buf: Uint8Array; have: number } | null = null;
  #pax = new Map<string, string>();
  #global = new Map<string, string>();
  #paxX = new Map<string, Uint8Array>();
  #globalX = new Map<string, Uint8Array>();
  #longName: string | null = null;
  #longLink: string | null = null;
  #inEntry = false;
  #done = false;
  /** Entries seen so far. */
  entries = 0;

  constructor(handler: TarHandler) {
    this.#h = handler;
  }

  /** True once the end-of-archive marker was read. */
  get done(): boolean {
    return this.#done;
  }

  /** Feeds the next piece of the archive. */
  push(buf: Uint8Array): void {
    let p = 0;
    const n = buf.length;
    while (p < n && !this.#done) {
      if (this.#remaining > 0) {
        const take = Math.min(this.#remaining, n - p);
        const piece = buf.subarray(p, p + take);
        if (this.#meta) {
          this.#meta.buf.set(piece, this.#meta.have);
          this.#meta.have += take;
        } else {
          this.#h.data(piece);
        }
        this.#remaining -= take;
        p += take;
        if (this.#remaining === 0) this.#bodyDone();
        continue;
      }
      if (this.#pad > 0) {
        const take = Math.min(this.#pad, n - p);
        this.#pad -= take;
        p += take;
        continue;
      }
      const take = Math.min(BLOCK - this.#hdrHave, n - p);
      this.#hdr.set(buf.subarray(p, p + take), this.#hdrHave);
      this.#hdrHave += take;
      p += take;
      if (this.#hdrHave === BLOCK) {
        this.#hdrHave = 0;
        this.#header(this.#hdr);
      }
    }
  }

  /** Checks that the archive ended cleanly (a truncated one throws). */
  finish(): void {
    if (this.#done) return;
    if (this.#remaining > 0 || this.#hdrHave > 0 || this.#meta || this.#inEntry) {
      throw new TarError("the archive is truncated");
    }
    // Archives without the two zero blocks are accepted (as GNU tar does), when they end between
    // entries.
    this.#done = true;
  }

  #bodyDone(): void {
    if (this.#meta) {
      const m = this.#meta;
      this.#meta = null;
      if (m.kind === "x") splitPax(m.buf, this.#pax, this.#paxX);
      else if (m.kind === "g") splitPax(m.buf, this.#global, this.#globalX);
      else if (m.kind === "L") this.#longName = cstr(m.buf, 0, m.buf.length);
      else if (m.kind === "K") this.#longLink = cstr(m.buf, 0, m.buf.length);
    } else {
      this.#inEntry = false;
      this.#h.end();
    }
    this.#pad = (BLOCK - (this.#padBase % BLOCK)) % BLOCK;
  }

  #padBase = 0;

  #header(b: Uint8Array): void {
    let zero = true;
    for (let i = 0; i < BLOCK; i++) {
      if (b[i] !== 0) {
        zero = false;
        break;
      }
    }
    if (zero) {
      this.#done = true;
      return;
    }
    if (!checksumOk(b)) throw new TarError("a header's checksum does not match (not a tar?)");
    const flag = String.fromCharCode(b[156]);
    const size = num(b, 124, 12);
    if (flag === "x" || flag === "g" || flag === "L" || flag === "K") {
      if (size > 16 << 20) throw new TarError(`a ${flag} header of ${size} bytes is too large`);
      this.#meta = { kind: flag, buf: new Uint8Array(size), have: 0 };
      this.#padBase = size;
      this.#remaining = size;
      if (size === 0) this.#bodyDone();
      return;
    }
    const type = TYPES[flag];
    if (type === undefined) {
      throw new TarError(`entry type "${flag}" is not supported (sparse or vendor extension)`);
    }
    const magic = cstr(b, 257, 6);
    let path = cstr(b, 0, 100);
    if (magic === "ustar") {
      const prefix = cstr(b, 345, 155);
      if (prefix) path = `${prefix}/${path}`;
    }
    const pax = this.#pax;
    const g = this.#global;
    const get = (k: string) => pax.get(k) ?? g.get(k);
    const h: TarHeader = {
      path: this.#longName ?? get("path") ?? path,
      type,
      mode: num(b, 100, 8) & 0o7777,
      uid: get("uid") !== undefined ? paxNumber(get("uid")!, "uid") : num(b, 108, 8),
      gid: get("gid") !== undefined ? paxNumber(get("gid")!, "gid") : num(b, 116, 8),
      mtime: get("mtime") !== undefined ? paxNumber(get("mtime")!, "mtime") : num(b, 136, 12),
      size: get("size") !== undefined ? paxNumber(get("size")!, "size") : size,
      linkname: this.#longLink ?? get("linkpath") ?? cstr(b, 157, 100),
      devmajor: type === "char" || type === "block" ? num(b, 329, 8) : 0,
      devminor: type === "char" || type === "block" ? num(b, 337, 8) : 0,
    };
    if (pax.has("path") && this.#longName === null) h.path = pax.get("path")!;
    if (this.#paxX.size || this.#globalX.size) {
      h.xattrs = [...new Map([...this.#globalX, ...this.#paxX])];
    }
    this.#pax = new Map();
    this.#paxX = new Map();
    this.#longName = null;
    this.#longLink = null;
    if (!Number.isSafeInteger(h.size) || h.size < 0) throw new TarError("bad entry size");
    if (!Number.isSafeInteger(h.uid) || !Number.isSafeInteger(h.gid)) {
      throw new TarError("bad owner in a header");
    }
    // Only regular files carry a body; a hardlink's size field is ignored (as GNU tar does).
    const body = type === "file" ? h.size : 0;
    if (type !== "file") h.size = 0;
    this.entries++;
    this.#inEntry = true;
    this.#h.entry(h);
    this.#padBase = body;
    this.#remaining = body;
    if (body === 0) this.#bodyDone();
  }
}
