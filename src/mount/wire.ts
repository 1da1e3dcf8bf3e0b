/**
 * The bytes hd's FUSE server exchanges with libfuse and the kernel: the struct layouts (named after
 * the C structs and their fields) and pure encoders/decoders over `Uint8Array`/`DataView`.
 *
 * This module exists so that the one place where a wrong offset silently corrupts what the kernel
 * sees can be tested on its own, without a mount, against the C headers
 * (`tests/mount/layout_test.ts` compares every constant here with `offsetof`/`sizeof` from
 * `/usr/include/linux/fuse.h` and `/usr/include/fuse3/fuse_lowlevel.h`; `tests/mount/wire_test.ts`
 * encodes known inodes and reads them back field by field, and compares directory entries with
 * what libfuse's own `fuse_add_direntry[_plus]` writes). It makes no FFI call and touches no
 * pointer: callers in `ops.ts` turn pointers into `DataView`s first.
 *
 * Layouts are those of x86_64 Linux with glibc and libfuse 3.x; all integers are little-endian.
 * 64-bit fields are written from numbers below 2^53 without BigInts (the hot paths are lookup,
 * getattr and readdirplus).
 *
 * @example
 * ```ts
 * import { encodeStat, STAT, wireBuffer } from "./wire.ts";
 * const w = wireBuffer(STAT.sizeof);
 * encodeStat(w, 0, { ino: 2, size: 5, mode: 0o100644, uid: 0, gid: 0, rdev: 0, mtime: 0 }, 1);
 * ```
 * @module
 */
import { FUSE_SET_ATTR } from "../../ffi/libfuse3.ts";
import { S_IFMT } from "../sys/mode.ts";

/** `struct stat` (glibc, x86_64): what libfuse's reply_attr/reply_entry read. */
export const STAT = {
  sizeof: 144,
  st_dev: 0,
  st_ino: 8,
  st_nlink: 16,
  st_mode: 24,
  st_uid: 28,
  st_gid: 32,
  st_rdev: 40,
  st_size: 48,
  st_blksize: 56,
  st_blocks: 64,
  st_atim: 72,
  st_mtim: 88,
  st_ctim: 104,
} as const;

/** `struct fuse_entry_param` (fuse_lowlevel.h): the argument of fuse_reply_entry/create. */
export const FUSE_ENTRY_PARAM = {
  sizeof: 176,
  ino: 0,
  generation: 8,
  attr: 16,
  attr_timeout: 160,
  entry_timeout: 168,
} as const;

/** `struct fuse_attr` (linux/fuse.h): the attributes inside a kernel entry reply. */
export const FUSE_ATTR = {
  sizeof: 88,
  ino: 0,
  size: 8,
  blocks: 16,
  atime: 24,
  mtime: 32,
  ctime: 40,
  atimensec: 48,
  mtimensec: 52,
  ctimensec: 56,
  mode: 60,
  nlink: 64,
  uid: 68,
  gid: 72,
  rdev: 76,
  blksize: 80,
  flags: 84,
} as const;

/** `struct fuse_entry_out` (linux/fuse.h): a kernel entry reply, the head of a direntplus. */
export const FUSE_ENTRY_OUT = {
  sizeof: 128,
  nodeid: 0,
  generation: 8,
  entry_valid: 16,
  attr_valid: 24,
  entry_valid_nsec: 32,
  attr_valid_nsec: 36,
  attr: 40,
} as const;

/** `struct fuse_dirent` (linux/fuse.h): one READDIR entry; the name follows at `name`. */
export const FUSE_DIRENT = {
  sizeof: 24,
  ino: 0,
  off: 8,
  namelen: 16,
  type: 20,
  name: 24,
} as const;

/** `struct fuse_direntplus` (linux/fuse.h): one READDIRPLUS entry (entry_out, then dirent). */
export const FUSE_DIRENTPLUS = { sizeof: 152, entry_out: 0, dirent: 128 } as const;

/** `FUSE_NAME_OFFSET` of linux/fuse.h: where a fuse_dirent's name starts. */
export const FUSE_NAME_OFFSET: number = FUSE_DIRENT.name;
/** `FUSE_NAME_OFFSET_DIRENTPLUS` of linux/fuse.h: where a fuse_direntplus's name starts. */
export const FUSE_NAME_OFFSET_DIRENTPLUS: number = FUSE_DIRENTPLUS.dirent + FUSE_DIRENT.name;
/** Directory entries are padded to a multiple of this (`FUSE_DIRENT_ALIGN`). */
export const FUSE_DIRENT_ALIGNMENT = 8;

/** `struct fuse_file_info` (fuse_common.h); `bits` is the word of one-bit flags after `flags`. */
export const FUSE_FILE_INFO = {
  sizeof: 40,
  flags: 0,
  bits: 4,
  fh: 16,
  lock_owner: 24,
  poll_events: 32,
} as const;

/** Bit numbers of the one-bit fields inside {@link FUSE_FILE_INFO}`.bits`. */
export const FUSE_FILE_INFO_BITS = {
  writepage: 0,
  direct_io: 1,
  keep_cache: 2,
  flush: 3,
  nonseekable: 4,
  flock_release: 5,
  cache_readdir: 6,
  noflush: 7,
} as const;

/** `struct statvfs` (glibc, x86_64): the argument of fuse_reply_statfs. */
export const STATVFS = {
  sizeof: 112,
  f_bsize: 0,
  f_frsize: 8,
  f_blocks: 16,
  f_bfree: 24,
  f_bavail: 32,
  f_files: 40,
  f_ffree: 48,
  f_favail: 56,
  f_fsid: 64,
  f_flag: 72,
  f_namemax: 80,
} as const;

/** `struct fuse_ctx` (fuse_lowlevel.h): who made a request (fuse_req_ctx). */
export const FUSE_CTX = { sizeof: 16, uid: 0, gid: 4, pid: 8, umask: 12 } as const;

/** Block size reported in stat and statfs. */
export const BLOCK_SIZE = 4096;

/** The attributes of an inode that go on the wire (a projection's `Inode` has them). */
export interface WireAttr {
  /** Inode number (also the FUSE node id). */
  readonly ino: number;
  /** Size in bytes. */
  readonly size: number;
  /** Full st_mode with type bits. */
  readonly mode: number;
  /** Owner. */
  readonly uid: number;
  /** Group. */
  readonly gid: number;
  /** Device number of a device node, else 0. */
  readonly rdev: number;
  /** Seconds since the epoch; used for atime, mtime and ctime. */
  readonly mtime: number;
}

/** A byte buffer and a DataView over the same bytes (offset 0), reused between replies. */
export interface WireBuffer {
  /** The bytes (what is passed to libfuse). */
  readonly bytes: Uint8Array<ArrayBuffer>;
  /** A view of the same bytes, for the multi-byte fields. */
  readonly view: DataView<ArrayBuffer>;
}

/** A zeroed {@link WireBuffer} of `size` bytes. */
export function wireBuffer(size: number): WireBuffer {
  const bytes = new Uint8Array(size);
  return { bytes, view: new DataView(bytes.buffer) };
}

const enc = new TextEncoder();

/** `s` as a NUL-terminated UTF-8 C string. */
export function cstr(s: string): Uint8Array<ArrayBuffer> {
  const b = enc.encode(s);
  const out = new Uint8Array(b.length + 1);
  out.set(b);
  return out;
}

/** Stores a non-negative integer below 2^53 as a little-endian u64, without a BigInt. */
export function setU64(v: DataView, off: number, x: number): void {
  v.setUint32(off, x >>> 0, true);
  v.setUint32(off + 4, Math.floor(x / 4294967296) >>> 0, true);
}

/** Writes a `struct stat` for `a` at `at` (the whole struct: unused fields are zeroed). */
export function encodeStat(w: WireBuffer, at: number, a: WireAttr, nlink: number): void {
  const v = w.view;
  w.bytes.fill(0, at, at + STAT.sizeof);
  setU64(v, at + STAT.st_ino, a.ino);
  setU64(v, at + STAT.st_nlink, nlink);
  v.setUint32(at + STAT.st_mode, a.mode, true);
  v.setUint32(at + STAT.st_uid, a.uid, true);
  v.setUint32(at + STAT.st_gid, a.gid, true);
  setU64(v, at + STAT.st_rdev, a.rdev);
  setU64(v, at + STAT.st_size, a.size);
  setU64(v, at + STAT.st_blksize, BLOCK_SIZE);
  setU64(v, at + STAT.st_blocks, Math.ceil(a.size / 512));
  setU64(v, at + STAT.st_atim, a.mtime);
  setU64(v, at + STAT.st_mtim, a.mtime);
  setU64(v, at + STAT.st_ctim, a.mtime);
}

/**
 * Writes a `struct fuse_entry_param` at offset 0 of `w`: `a`'s attributes valid for `timeout`
 * seconds, or with `a` null a negative entry (ino 0: the kernel caches the miss).
 */
export function encodeEntryParam(
  w: WireBuffer,
  a: WireAttr | null,
  nlink: number,
  timeout: number,
): void {
  const v = w.view;
  const E = FUSE_ENTRY_PARAM;
  if (a) encodeStat(w, E.attr, a, nlink);
  else w.bytes.fill(0, E.attr, E.attr + STAT.sizeof);
  setU64(v, E.ino, a ? a.ino : 0);
  setU64(v, E.generation, 0);
  v.setFloat64(E.attr_timeout, timeout, true);
  v.setFloat64(E.entry_timeout, timeout, true);
}

/** Writes a kernel `struct fuse_entry_out` (and its fuse_attr) at `at`, as libfuse's fill_entry. */
export function encodeEntryOut(
  v: DataView,
  at: number,
  a: WireAttr,
  nlink: number,
  timeout: number,
): void {
  const O = FUSE_ENTRY_OUT;
  const sec = Math.floor(timeout);
  const nsec = Math.floor((timeout - sec) * 1e9);
  setU64(v, at + O.nodeid, a.ino);
  setU64(v, at + O.generation, 0);
  setU64(v, at + O.entry_valid, sec);
  setU64(v, at + O.attr_valid, sec);
  v.setUint32(at + O.entry_valid_nsec, nsec, true);
  v.setUint32(at + O.attr_valid_nsec, nsec, true);
  const p = at + O.attr;
  const A = FUSE_ATTR;
  setU64(v, p + A.ino, a.ino);
  setU64(v, p + A.size, a.size);
  setU64(v, p + A.blocks, Math.ceil(a.size / 512));
  setU64(v, p + A.atime, a.mtime);
  setU64(v, p + A.mtime, a.mtime);
  setU64(v, p + A.ctime, a.mtime);
  v.setUint32(p + A.atimensec, 0, true);
  v.setUint32(p + A.mtimensec, 0, true);
  v.setUint32(p + A.ctimensec, 0, true);
  v.setUint32(p + A.mode, a.mode, true);
  v.setUint32(p + A.nlink, nlink, true);
  v.setUint32(p + A.uid, a.uid, true);
  v.setUint32(p + A.gid, a.gid, true);
  v.setUint32(p + A.rdev, a.rdev, true);
  v.setUint32(p + A.blksize, BLOCK_SIZE, true);
  v.setUint32(p + A.flags, 0, true);
}

/**
 * Copies `name` into `buf` at `at` when it is ASCII and at most `room` bytes (nearly every file
 * name: no TextEncoder call per entry); returns its length, or -1 when it is not (nothing useful
 * written).
 */
function asciiInto(buf: Uint8Array, at: number, room: number, name: string): number {
  const n = name.length;
  if (n > room) return -1;
  for (let i = 0; i < n; i++) {
    const c = name.charCodeAt(i);
    if (c > 0x7f) return -1;
    buf[at + i] = c;
  }
  return n;
}

/**
 * Writes the name of a directory entry whose header is `head` bytes, and zeroes its padding.
 * Returns the name's length in bytes, or -1 when the padded entry does not fit before `cap`.
 */
function putName(w: WireBuffer, pos: number, cap: number, head: number, name: string): number {
  const buf = w.bytes;
  const room = cap - pos - head;
  if (room <= 0) return -1;
  let len = asciiInto(buf, pos + head, room, name);
  if (len >= 0) {
    // ASCII: copied
  } else if (name.length * 3 <= room) len = enc.encodeInto(name, buf.subarray(pos + head)).written;
  else {
    const b = enc.encode(name);
    if (b.length > room) return -1;
    buf.set(b, pos + head);
    len = b.length;
  }
  const padded = direntSize(head, len);
  if (padded > cap - pos) return -1;
  buf.fill(0, pos + head + len, pos + padded);
  return len;
}

function putDirentHead(
  v: DataView,
  d: number,
  ino: number,
  off: number,
  len: number,
  mode: number,
) {
  setU64(v, d + FUSE_DIRENT.ino, ino);
  setU64(v, d + FUSE_DIRENT.off, off);
  v.setUint32(d + FUSE_DIRENT.namelen, len, true);
  v.setUint32(d + FUSE_DIRENT.type, (mode & S_IFMT) >>> 12, true);
}

/** Size of a padded directory entry with a header of `head` bytes and a name of `len` bytes. */
export function direntSize(head: number, len: number): number {
  return (head + len + FUSE_DIRENT_ALIGNMENT - 1) & ~(FUSE_DIRENT_ALIGNMENT - 1);
}

/**
 * Appends a `struct fuse_dirent` at `pos` (what fuse_add_direntry writes): inode `ino`, the
 * offset `off` of the next entry, the type from `mode`, the name zero-padded to 8 bytes. Returns
 * the position after it, or -1 when it does not fit before `cap` (nothing counted as written).
 */
export function putDirent(
  w: WireBuffer,
  pos: number,
  cap: number,
  name: string,
  ino: number,
  off: number,
  mode: number,
): number {
  const len = putName(w, pos, cap, FUSE_NAME_OFFSET, name);
  if (len < 0) return -1;
  putDirentHead(w.view, pos, ino, off, len, mode);
  return pos + direntSize(FUSE_NAME_OFFSET, len);
}

/**
 * Appends a `struct fuse_direntplus` at `pos` (what fuse_add_direntry_plus writes): an entry_out
 * for `a` valid for `timeout` seconds, then the dirent. Returns the position after it, or -1 when
 * it does not fit before `cap`. Without `withEntry` the entry_out is zero (nodeid 0): the kernel
 * lists the name and type and looks the entry up only if it is used.
 */
export function putDirentPlus(
  w: WireBuffer,
  pos: number,
  cap: number,
  name: string,
  a: WireAttr,
  nlink: number,
  off: number,
  timeout: number,
  withEntry = true,
): number {
  const len = putName(w, pos, cap, FUSE_NAME_OFFSET_DIRENTPLUS, name);
  if (len < 0) return -1;
  const at = pos + FUSE_DIRENTPLUS.entry_out;
  if (withEntry) encodeEntryOut(w.view, at, a, nlink, timeout);
  else w.bytes.fill(0, at, at + FUSE_ENTRY_OUT.sizeof); // nodeid 0: name and type only
  putDirentHead(w.view, pos + FUSE_DIRENTPLUS.dirent, a.ino, off, len, a.mode);
  return pos + direntSize(FUSE_NAME_OFFSET_DIRENTPLUS, len);
}

/** What a setattr asks to change, decoded from its `struct stat` and `to_set` bits. */
export interface SetattrRequest {
  /** New size (FUSE_SET_ATTR_SIZE), else null. */
  size: number | null;
  /** Mode, owner and mtime (seconds) to set; empty when none is asked. */
  attrs: { mode?: number; uid?: number; gid?: number; mtime?: number };
}

/** Decodes setattr's `struct stat` `v` for the fields `toSet` names; MTIME_NOW becomes `nowSec`. */
export function decodeSetattr(v: DataView, toSet: number, nowSec: number): SetattrRequest {
  const size = toSet & FUSE_SET_ATTR.SIZE ? Number(v.getBigInt64(STAT.st_size, true)) : null;
  const attrs: SetattrRequest["attrs"] = {};
  if (toSet & FUSE_SET_ATTR.MODE) attrs.mode = v.getUint32(STAT.st_mode, true);
  if (toSet & FUSE_SET_ATTR.UID) attrs.uid = v.getUint32(STAT.st_uid, true);
  if (toSet & FUSE_SET_ATTR.GID) attrs.gid = v.getUint32(STAT.st_gid, true);
  if (toSet & FUSE_SET_ATTR.MTIME) attrs.mtime = Number(v.getBigInt64(STAT.st_mtim, true));
  if (toSet & FUSE_SET_ATTR.MTIME_NOW) attrs.mtime = nowSec;
  return { size, attrs };
}

/** The open(2) flags in a `struct fuse_file_info`. */
export function fileInfoFlags(v: DataView): number {
  return v.getInt32(FUSE_FILE_INFO.flags, true);
}

/** The file handle (`fh`) in a `struct fuse_file_info`. */
export function fileInfoFh(v: DataView): number {
  return Number(v.getBigUint64(FUSE_FILE_INFO.fh, true));
}

/** Sets the file handle (`fh`) in a `struct fuse_file_info`. */
export function setFileInfoFh(v: DataView, fh: number): void {
  v.setBigUint64(FUSE_FILE_INFO.fh, BigInt(fh), true);
}

/** Sets one-bit flags ({@link FUSE_FILE_INFO_BITS}) in a `struct fuse_file_info`. */
export function setFileInfoBits(v: DataView, bits: readonly number[]): void {
  let w = v.getUint32(FUSE_FILE_INFO.bits, true);
  for (const b of bits) w |= 1 << b;
  v.setUint32(FUSE_FILE_INFO.bits, w, true);
}

/** The caller's uid and gid from a `struct fuse_ctx`. */
export function decodeCtx(v: DataView): { uid: number; gid: number } {
  return { uid: v.getUint32(FUSE_CTX.uid, true), gid: v.getUint32(FUSE_CTX.gid, true) };
}

/** A `struct statvfs` with 4 KiB blocks, `freeBlocks` blocks (all free) and `files` inodes. */
export function encodeStatvfs(freeBlocks: number, files: number): Uint8Array<ArrayBuffer> {
  const S = STATVFS;
  const w = wireBuffer(S.sizeof);
  const v = w.view;
  setU64(v, S.f_bsize, BLOCK_SIZE);
  setU64(v, S.f_frsize, BLOCK_SIZE);
  setU64(v, S.f_blocks, freeBlocks);
  setU64(v, S.f_bfree, freeBlocks);
  setU64(v, S.f_bavail, freeBlocks);
  setU64(v, S.f_files, files);
  setU64(v, S.f_namemax, 255);
  return w.bytes;
}

/** A listxattr reply: every name followed by a NUL. */
export function encodeXattrNames(names: readonly string[]): Uint8Array<ArrayBuffer> {
  return enc.encode(names.map((k) => k + "\0").join(""));
}
