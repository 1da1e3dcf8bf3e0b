/**
 * The FUSE wire encodings of src/mount/wire.ts, without a mount: known inodes are encoded and read
 * back field by field at the offsets the C compiler reports for the kernel's and libfuse's structs
 * (tests/mount/_headers.ts; never at wire.ts's own constants), and directory entries are compared
 * byte for byte with what libfuse's fuse_add_direntry / fuse_add_direntry_plus write for the same
 * entry.
 */
import { assert, assertEquals } from "../_assert.ts";
import {
  EAGER_SYMBOLS,
  FUSE_SET_ATTR,
  openLibfuse3,
  SERVE_SYMBOLS,
  SYMBOLS,
} from "../../ffi/libfuse3.ts";
import {
  cstr,
  decodeCtx,
  decodeSetattr,
  encodeEntryParam,
  encodeStat,
  encodeStatvfs,
  encodeXattrNames,
  fileInfoFh,
  fileInfoFlags,
  FUSE_FILE_INFO_BITS,
  putDirent,
  putDirentPlus,
  setFileInfoBits,
  setFileInfoFh,
  type WireAttr,
  wireBuffer,
} from "../../src/mount/wire.ts";
import { testIf } from "../_helpers.ts";
import { fig, HEADERS_SKIP } from "./_headers.ts";

/** A regular file whose every field needs more than 32 bits or is otherwise distinctive. */
const FILE: WireAttr = {
  ino: 2 ** 40 + 7,
  size: 5 * 2 ** 30 + 123,
  mode: 0o100755,
  uid: 1000,
  gid: 100,
  rdev: 0,
  mtime: 1_700_000_001,
};
/** A character device (rdev, type 2) and a directory and a symlink (types 4 and 10). */
const CHR: WireAttr = { ino: 3, size: 0, mode: 0o20666, uid: 0, gid: 5, rdev: 0x0501, mtime: 0 };
const DIR: WireAttr = { ino: 1, size: 0, mode: 0o40755, uid: 0, gid: 0, rdev: 0, mtime: 946684800 };
const LNK: WireAttr = { ino: 9, size: 11, mode: 0o120777, uid: 0, gid: 0, rdev: 0, mtime: 1 };

const u64 = (v: DataView, off: number) => Number(v.getBigUint64(off, true));
const u32 = (v: DataView, off: number) => v.getUint32(off, true);

/** Asserts that `struct stat` at `base` of `v` says `a` with `nlink`, zero elsewhere. */
function checkStat(bytes: Uint8Array, base: number, a: WireAttr, nlink: number): void {
  const v = new DataView(bytes.buffer, bytes.byteOffset);
  const at = (f: string) => base + fig(`STAT.${f}`);
  const sec = fig("timespec.tv_sec");
  const nsec = fig("timespec.tv_nsec");
  assertEquals(u64(v, at("st_dev")), 0, "st_dev");
  assertEquals(u64(v, at("st_ino")), a.ino, "st_ino");
  assertEquals(u64(v, at("st_nlink")), nlink, "st_nlink");
  assertEquals(u32(v, at("st_mode")), a.mode, "st_mode");
  assertEquals(u32(v, at("st_uid")), a.uid, "st_uid");
  assertEquals(u32(v, at("st_gid")), a.gid, "st_gid");
  assertEquals(u64(v, at("st_rdev")), a.rdev, "st_rdev");
  assertEquals(Number(v.getBigInt64(at("st_size"), true)), a.size, "st_size");
  assertEquals(u64(v, at("st_blksize")), 4096, "st_blksize");
  assertEquals(u64(v, at("st_blocks")), Math.ceil(a.size / 512), "st_blocks");
  for (const t of ["st_atim", "st_mtim", "st_ctim"]) {
    assertEquals(u64(v, at(t) + sec), a.mtime, `${t}.tv_sec`);
    assertEquals(u64(v, at(t) + nsec), 0, `${t}.tv_nsec`);
  }
  // Padding and glibc's reserved words are zero: clear the fields above, nothing may remain.
  const copy = bytes.slice(base, base + fig("STAT.sizeof"));
  const cv = new DataView(copy.buffer);
  for (const f of ["st_ino", "st_nlink", "st_rdev", "st_size", "st_blksize", "st_blocks"]) {
    cv.setBigUint64(fig(`STAT.${f}`), 0n, true);
  }
  for (const f of ["st_mode", "st_uid", "st_gid"]) cv.setUint32(fig(`STAT.${f}`), 0, true);
  for (const t of ["st_atim", "st_mtim", "st_ctim"]) cv.setBigUint64(fig(`STAT.${t}`) + sec, 0n);
  assertEquals([...copy].every((b) => b === 0), true, "struct stat: other bytes are zero");
}

testIf(HEADERS_SKIP, "encodeStat writes struct stat field by field", () => {
  for (const [a, nlink] of [[FILE, 1], [CHR, 1], [DIR, 7], [LNK, 1]] as const) {
    const w = wireBuffer(16 + fig("STAT.sizeof") + 16);
    w.bytes.fill(0xee);
    encodeStat(w, 16, a, nlink);
    checkStat(w.bytes, 16, a, nlink);
    // Nothing written outside the struct.
    assertEquals(w.bytes.subarray(0, 16).every((b) => b === 0xee), true, "before");
    assertEquals(w.bytes.subarray(16 + fig("STAT.sizeof")).every((b) => b === 0xee), true, "after");
  }
});

testIf(
  HEADERS_SKIP,
  "encodeEntryParam writes struct fuse_entry_param, and negative entries",
  () => {
    const w = wireBuffer(fig("FUSE_ENTRY_PARAM.sizeof"));
    w.bytes.fill(0xee);
    encodeEntryParam(w, FILE, 1, 86400);
    const v = w.view;
    const at = (f: string) => fig(`FUSE_ENTRY_PARAM.${f}`);
    assertEquals(u64(v, at("ino")), FILE.ino, "ino");
    assertEquals(u64(v, at("generation")), 0, "generation");
    assertEquals(v.getFloat64(at("attr_timeout"), true), 86400, "attr_timeout");
    assertEquals(v.getFloat64(at("entry_timeout"), true), 86400, "entry_timeout");
    checkStat(w.bytes, at("attr"), FILE, 1);

    // A negative entry (the kernel caches the miss): ino 0, attributes zero, the timeouts kept.
    w.bytes.fill(0xee);
    encodeEntryParam(w, null, 0, 0.5);
    assertEquals(u64(v, at("ino")), 0, "negative ino");
    assertEquals(u64(v, at("generation")), 0, "negative generation");
    assertEquals(v.getFloat64(at("attr_timeout"), true), 0.5, "negative attr_timeout");
    assertEquals(v.getFloat64(at("entry_timeout"), true), 0.5, "negative entry_timeout");
    const attr = w.bytes.subarray(at("attr"), at("attr") + fig("STAT.sizeof"));
    assertEquals(attr.every((b) => b === 0), true, "negative attr is zero");
  },
);

/** Asserts the kernel `struct fuse_entry_out` at `base`: `a`, `nlink`, valid for `timeout` s. */
function checkEntryOut(v: DataView, base: number, a: WireAttr, nlink: number, timeout: number) {
  const o = (f: string) => base + fig(`FUSE_ENTRY_OUT.${f}`);
  const sec = Math.floor(timeout);
  const nsec = Math.round((timeout - sec) * 1e9);
  assertEquals(u64(v, o("nodeid")), a.ino, "nodeid");
  assertEquals(u64(v, o("generation")), 0, "generation");
  assertEquals(u64(v, o("entry_valid")), sec, "entry_valid");
  assertEquals(u64(v, o("attr_valid")), sec, "attr_valid");
  assertEquals(u32(v, o("entry_valid_nsec")), nsec, "entry_valid_nsec");
  assertEquals(u32(v, o("attr_valid_nsec")), nsec, "attr_valid_nsec");
  const p = (f: string) => o("attr") + fig(`FUSE_ATTR.${f}`);
  assertEquals(u64(v, p("ino")), a.ino, "attr.ino");
  assertEquals(u64(v, p("size")), a.size, "attr.size");
  assertEquals(u64(v, p("blocks")), Math.ceil(a.size / 512), "attr.blocks");
  for (const t of ["atime", "mtime", "ctime"]) {
    assertEquals(u64(v, p(t)), a.mtime, `attr.${t}`);
    assertEquals(u32(v, p(`${t}nsec`)), 0, `attr.${t}nsec`);
  }
  assertEquals(u32(v, p("mode")), a.mode, "attr.mode");
  assertEquals(u32(v, p("nlink")), nlink, "attr.nlink");
  assertEquals(u32(v, p("uid")), a.uid, "attr.uid");
  assertEquals(u32(v, p("gid")), a.gid, "attr.gid");
  assertEquals(u32(v, p("rdev")), a.rdev, "attr.rdev");
  assertEquals(u32(v, p("blksize")), 4096, "attr.blksize");
  assertEquals(u32(v, p("flags")), 0, "attr.flags");
}

/** Asserts the `struct fuse_dirent` at `base` and returns its padded length. */
function checkDirent(
  bytes: Uint8Array,
  base: number,
  name: string,
  a: WireAttr,
  off: number,
): number {
  const v = new DataView(bytes.buffer, bytes.byteOffset);
  const d = (f: string) => base + fig(`FUSE_DIRENT.${f}`);
  const nameBytes = new TextEncoder().encode(name);
  assertEquals(u64(v, d("ino")), a.ino, "dirent.ino");
  assertEquals(u64(v, d("off")), off, "dirent.off");
  assertEquals(u32(v, d("namelen")), nameBytes.length, "dirent.namelen");
  assertEquals(u32(v, d("type")), (a.mode & 0o170000) >> 12, "dirent.type (DT_*)");
  assertEquals([...bytes.subarray(d("name"), d("name") + nameBytes.length)], [...nameBytes]);
  const align = fig("FUSE_DIRENT_ALIGNMENT");
  const len = Math.ceil((fig("FUSE_DIRENT.name") + nameBytes.length) / align) * align;
  const pad = bytes.subarray(d("name") + nameBytes.length, base + len);
  assertEquals(pad.every((b) => b === 0), true, "name padding is zero");
  return len;
}

testIf(HEADERS_SKIP, "putDirent writes struct fuse_dirent entries back to back", () => {
  const entries: [string, WireAttr][] = [
    [".", DIR],
    ["..", DIR],
    ["index.js", FILE],
    ["tty0", CHR],
    ["lien-été-😀", LNK], // multibyte UTF-8: namelen counts bytes
    ["exactly8", FILE], // 24 + 8: no padding
  ];
  const w = wireBuffer(4096);
  w.bytes.fill(0xee);
  let pos = 0;
  entries.forEach(([name, a], i) => {
    const next = putDirent(w, pos, 4096, name, a.ino, i + 1, a.mode);
    assert(next > pos, `${name} fits`);
    pos = next;
  });
  let at = 0;
  entries.forEach(([name, a], i) => at += checkDirent(w.bytes, at, name, a, i + 1));
  assertEquals(pos, at, "returned position = sum of the padded lengths");
  assertEquals(w.bytes[pos], 0xee, "nothing written past the last entry");

  // An entry that does not fit is not written and returns -1; one that fits exactly does.
  const name = "abcdefghij"; // 24 + 10 → 40 padded
  assertEquals(putDirent(w, 0, 39, name, 5, 1, 0o100644), -1, "39 bytes: no room");
  assertEquals(putDirent(w, 100, 100 + 40, name, 5, 1, 0o100644), 140, "40 bytes: fits");
  assertEquals(putDirent(w, 0, 24, "", 5, 1, 0o100644), -1, "no room for a name at all");
});

testIf(HEADERS_SKIP, "putDirentPlus writes struct fuse_direntplus (entry_out, then dirent)", () => {
  const w = wireBuffer(8192);
  let pos = 0;
  const entries: [string, WireAttr, number][] = [["d", DIR, 5], ["f", FILE, 1], ["c", CHR, 1]];
  for (const [i, [name, a, nlink]] of entries.entries()) {
    pos = putDirentPlus(w, pos, 8192, name, a, nlink, i + 1, 1.25);
    assert(pos > 0, `${name} fits`);
  }
  let at = 0;
  for (const [i, [name, a, nlink]] of entries.entries()) {
    checkEntryOut(w.view, at + fig("FUSE_DIRENTPLUS.entry_out"), a, nlink, 1.25);
    const len = checkDirent(w.bytes, at + fig("FUSE_DIRENTPLUS.dirent"), name, a, i + 1);
    at += fig("FUSE_DIRENTPLUS.dirent") + len;
  }
  assertEquals(pos, at);
  assertEquals(putDirentPlus(w, 0, fig("FUSE_DIRENTPLUS.sizeof"), "x", FILE, 1, 1, 1), -1);
});

testIf(
  HEADERS_SKIP,
  "putDirentPlus without an entry: entry_out all zero, the dirent intact",
  () => {
    const w = wireBuffer(4096);
    w.bytes.fill(0xee);
    const end = putDirentPlus(w, 0, 4096, "sub", DIR, 5, 3, 1.25, false);
    const eo = fig("FUSE_DIRENTPLUS.entry_out");
    assert(w.bytes.subarray(eo, eo + fig("FUSE_ENTRY_OUT.sizeof")).every((b) => b === 0), "zeros");
    const len = checkDirent(w.bytes, fig("FUSE_DIRENTPLUS.dirent"), "sub", DIR, 3);
    assertEquals(end, fig("FUSE_DIRENTPLUS.dirent") + len);
  },
);

testIf(HEADERS_SKIP, "decodeSetattr reads the struct stat fields to_set names", () => {
  const st = new DataView(new ArrayBuffer(fig("STAT.sizeof")));
  st.setBigInt64(fig("STAT.st_size"), 5n * 2n ** 32n + 1n, true);
  st.setUint32(fig("STAT.st_mode"), 0o100600, true);
  st.setUint32(fig("STAT.st_uid"), 1234, true);
  st.setUint32(fig("STAT.st_gid"), 4321, true);
  st.setBigInt64(fig("STAT.st_mtim") + fig("timespec.tv_sec"), 1_600_000_000n, true);
  st.setBigInt64(fig("STAT.st_atim") + fig("timespec.tv_sec"), 42n, true);
  const S = FUSE_SET_ATTR;
  assertEquals(decodeSetattr(st, 0, 7), { size: null, attrs: {} });
  assertEquals(decodeSetattr(st, S.SIZE, 7), { size: 5 * 2 ** 32 + 1, attrs: {} });
  assertEquals(decodeSetattr(st, S.MODE | S.UID | S.GID | S.MTIME, 7), {
    size: null,
    attrs: { mode: 0o100600, uid: 1234, gid: 4321, mtime: 1_600_000_000 },
  });
  assertEquals(decodeSetattr(st, S.MTIME | S.MTIME_NOW, 7), { size: null, attrs: { mtime: 7 } });
  // atime alone changes nothing hd keeps.
  assertEquals(decodeSetattr(st, S.ATIME, 7), { size: null, attrs: {} });
});

testIf(HEADERS_SKIP, "fuse_file_info: flags, fh and the one-bit flags at the C offsets", () => {
  const b = new Uint8Array(fig("FUSE_FILE_INFO.sizeof"));
  const v = new DataView(b.buffer);
  v.setInt32(fig("FUSE_FILE_INFO.flags"), 0o1101, true); // O_WRONLY|O_CREAT|O_TRUNC
  assertEquals(fileInfoFlags(v), 0o1101);
  setFileInfoFh(v, 2 ** 33 + 5);
  assertEquals(u64(v, fig("FUSE_FILE_INFO.fh")), 2 ** 33 + 5);
  assertEquals(fileInfoFh(v), 2 ** 33 + 5);
  setFileInfoBits(v, [FUSE_FILE_INFO_BITS.keep_cache]);
  setFileInfoBits(v, [FUSE_FILE_INFO_BITS.cache_readdir]);
  const word = u32(v, fig("FUSE_FILE_INFO.bits"));
  const want = (1 << fig("FUSE_FILE_INFO_BITS.keep_cache")) |
    (1 << fig("FUSE_FILE_INFO_BITS.cache_readdir"));
  assertEquals(word, want, "keep_cache and cache_readdir set, nothing else");
  assertEquals(fileInfoFlags(v), 0o1101, "flags untouched");
});

testIf(HEADERS_SKIP, "statvfs, fuse_ctx, xattr names and C strings", () => {
  const s = new DataView(encodeStatvfs(2 ** 33, 12345).buffer);
  assertEquals(s.byteLength, fig("STATVFS.sizeof"));
  const f = (k: string) => u64(s, fig(`STATVFS.${k}`));
  assertEquals([f("f_bsize"), f("f_frsize")], [4096, 4096]);
  assertEquals([f("f_blocks"), f("f_bfree"), f("f_bavail")], [2 ** 33, 2 ** 33, 2 ** 33]);
  assertEquals([f("f_files"), f("f_ffree"), f("f_favail")], [12345, 0, 0]);
  assertEquals([f("f_fsid"), f("f_flag"), f("f_namemax")], [0, 0, 255]);

  const c = new DataView(new ArrayBuffer(fig("FUSE_CTX.sizeof")));
  c.setUint32(fig("FUSE_CTX.uid"), 1001, true);
  c.setUint32(fig("FUSE_CTX.gid"), 2002, true);
  c.setUint32(fig("FUSE_CTX.pid"), 3003, true);
  assertEquals(decodeCtx(c), { uid: 1001, gid: 2002 });

  assertEquals([...encodeXattrNames(["user.a", "security.capability"])], [
    ...new TextEncoder().encode("user.a\0security.capability\0"),
  ]);
  assertEquals([...encodeXattrNames([])], []);
  assertEquals([...cstr("é")], [0xc3, 0xa9, 0]);
});

function libfuseSkip(): string | null {
  try {
    openLibfuse3().close();
    return null;
  } catch (e) {
    return `needs libfuse3.so.3 (${(e as Error).message})`;
  }
}

testIf(
  libfuseSkip(),
  "readdir entries are byte for byte what libfuse's fuse_add_direntry[_plus] write",
  () => {
    const lib = openLibfuse3();
    try {
      const L = lib.symbols;
      const names: [string, WireAttr, number][] = [
        [".", DIR, 4],
        ["..", DIR, 4],
        ["index.js", FILE, 1],
        ["tty0", CHR, 1],
        ["lien-été-😀", LNK, 1],
        ["exactly8", FILE, 1],
        ["x".repeat(255), FILE, 1],
      ];
      for (const timeout of [86400, 1, 1.25]) {
        const ours = wireBuffer(8192);
        const theirs = new Uint8Array(8192);
        const oursPlus = wireBuffer(16384);
        const theirsPlus = new Uint8Array(16384);
        let pos = 0, tpos = 0, ppos = 0, tppos = 0;
        for (const [i, [name, a, nlink]] of names.entries()) {
          const st = wireBuffer(fig("STAT.sizeof"));
          encodeStat(st, 0, a, nlink);
          const e = wireBuffer(fig("FUSE_ENTRY_PARAM.sizeof"));
          encodeEntryParam(e, a, nlink, timeout);
          pos = putDirent(ours, pos, 8192, name, a.ino, i + 1, a.mode);
          tpos += Number(L.fuse_add_direntry(
            null,
            theirs.subarray(tpos),
            BigInt(8192 - tpos),
            cstr(name),
            st.bytes,
            BigInt(i + 1),
          ));
          ppos = putDirentPlus(oursPlus, ppos, 16384, name, a, nlink, i + 1, timeout);
          tppos += Number(L.fuse_add_direntry_plus(
            null,
            theirsPlus.subarray(tppos),
            BigInt(16384 - tppos),
            cstr(name),
            e.bytes,
            BigInt(i + 1),
          ));
          assertEquals(pos, tpos, `dirent ${i} length`);
          assertEquals(ppos, tppos, `direntplus ${i} length`);
        }
        assertEquals([...ours.bytes.subarray(0, pos)], [...theirs.subarray(0, tpos)], "dirents");
        assertEquals(
          [...oursPlus.bytes.subarray(0, ppos)],
          [...theirsPlus.subarray(0, tppos)],
          `direntplus entries (timeout ${timeout})`,
        );
      }
    } finally {
      lib.close();
    }
  },
);

testIf(
  libfuseSkip(),
  "openLibfuse3: every declared symbol is there, the eager ones bound at once, each group on first use",
  () => {
    const lib = openLibfuse3();
    try {
      assertEquals(Object.keys(lib.symbols).sort(), Object.keys(SYMBOLS).sort());
      const desc = (k: string) => Object.getOwnPropertyDescriptor(lib.symbols, k)!;
      const isBound = (k: string) => typeof desc(k).value === "function";
      for (const k of EAGER_SYMBOLS) assertEquals(isBound(k), true, k);
      const serve = SERVE_SYMBOLS as readonly string[];
      const rest = Object.keys(SYMBOLS).filter((k) =>
        !(EAGER_SYMBOLS as readonly string[]).includes(k) && !serve.includes(k)
      );
      for (const k of [...serve, ...rest]) assertEquals(isBound(k), false, `${k} not bound yet`);
      // one use binds its group, as plain values from then on, and not the other group
      assertEquals(typeof lib.symbols.fuse_session_fd, "function");
      for (const k of serve) assertEquals(isBound(k), true, `${k} bound`);
      for (const k of rest) assertEquals(isBound(k), false, `${k} not bound yet`);
      assertEquals(typeof lib.symbols.fuse_reply_xattr, "function");
      for (const k of rest) assertEquals(isBound(k), true, `${k} bound`);
    } finally {
      lib.close();
    }
  },
);
