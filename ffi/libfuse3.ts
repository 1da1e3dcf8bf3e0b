/**
 * Raw Deno FFI bindings to libfuse3's low-level API (libfuse 3.x, x86_64 Linux, glibc): the
 * symbols, callback signatures and the layouts of the structs hd passes to libfuse itself (the
 * ops table, fuse_args, fuse_buf). Nothing else lives here: the session loop, the ops and the
 * reply encodings are in src/mount/. Layouts are checked against the libfuse3-dev headers by
 * tests/mount/layout_test.ts.
 *
 * @example
 * ```ts
 * import { openLibfuse3 } from "./libfuse3.ts";
 * const lib = openLibfuse3(); // throws when libfuse3.so.3 is missing
 * ```
 * @module
 */
import { dlopenGroups } from "./dlopen_groups.ts";

/** Candidate file names of the shared library, first match wins. */
export const LIBFUSE3_NAMES = [
  "libfuse3.so.3",
  "/usr/lib/x86_64-linux-gnu/libfuse3.so.3",
  "/lib/x86_64-linux-gnu/libfuse3.so.3",
  "/usr/lib64/libfuse3.so.3",
  "/usr/lib/libfuse3.so.3",
];

/**
 * Byte offsets and sizes of the C structs the session hands to libfuse (x86_64, glibc, libfuse
 * 3.14). The structs of requests and replies (stat, fuse_entry_param, fuse_file_info, statvfs,
 * fuse_ctx, the kernel's dirents) are in src/mount/wire.ts, next to their encoders.
 */
export const LAYOUT = {
  /** sizeof(struct fuse_lowlevel_ops): 44 function pointers. */
  opsSize: 352,
  /** Offsets of the ops in struct fuse_lowlevel_ops. */
  ops: {
    init: 0,
    destroy: 8,
    lookup: 16,
    forget: 24,
    getattr: 32,
    setattr: 40,
    readlink: 48,
    mknod: 56,
    mkdir: 64,
    unlink: 72,
    rmdir: 80,
    symlink: 88,
    rename: 96,
    link: 104,
    open: 112,
    read: 120,
    write: 128,
    flush: 136,
    release: 144,
    fsync: 152,
    opendir: 160,
    readdir: 168,
    releasedir: 176,
    fsyncdir: 184,
    statfs: 192,
    setxattr: 200,
    getxattr: 208,
    listxattr: 216,
    removexattr: 224,
    access: 232,
    create: 240,
    getlk: 248,
    setlk: 256,
    bmap: 264,
    ioctl: 272,
    poll: 280,
    write_buf: 288,
    retrieve_reply: 296,
    forget_multi: 304,
    flock: 312,
    fallocate: 320,
    readdirplus: 328,
    copy_file_range: 336,
    lseek: 344,
  },
  /** struct fuse_args. */
  args: { size: 24, argc: 0, argv: 8, allocated: 16 },
  /** struct fuse_buf (passed zeroed; libfuse allocates `mem`). */
  buf: { size: 40, size_field: 0, flags: 8, mem: 16, fd: 24, pos: 32 },
  /** struct fuse_conn_info. */
  conn: { size: 128, max_write: 8, max_read: 12, max_readahead: 16, capable: 20, want: 24 },
  /** struct fuse_forget_data (forget_multi). */
  forget: { size: 16, ino: 0, nlookup: 8 },
} as const;

/** The symbols hd binds. */
export const SYMBOLS = {
  fuse_session_new: { parameters: ["pointer", "pointer", "usize", "pointer"], result: "pointer" },
  fuse_session_mount: { parameters: ["pointer", "buffer"], result: "i32" },
  fuse_session_unmount: { parameters: ["pointer"], result: "void" },
  fuse_session_destroy: { parameters: ["pointer"], result: "void" },
  fuse_session_exit: { parameters: ["pointer"], result: "void" },
  fuse_session_exited: { parameters: ["pointer"], result: "i32" },
  fuse_session_fd: { parameters: ["pointer"], result: "i32" },
  fuse_session_receive_buf: {
    parameters: ["pointer", "pointer"],
    result: "i32",
    nonblocking: true,
  },
  /** The same call bound synchronously, for draining a non-blocking fd on the JS thread. */
  fuse_session_receive_buf_sync: {
    name: "fuse_session_receive_buf",
    parameters: ["pointer", "pointer"],
    result: "i32",
  },
  fuse_session_process_buf: { parameters: ["pointer", "pointer"], result: "void" },
  fuse_reply_err: { parameters: ["pointer", "i32"], result: "i32" },
  fuse_reply_none: { parameters: ["pointer"], result: "void" },
  fuse_reply_entry: { parameters: ["pointer", "buffer"], result: "i32" },
  fuse_reply_create: { parameters: ["pointer", "buffer", "pointer"], result: "i32" },
  fuse_reply_attr: { parameters: ["pointer", "buffer", "f64"], result: "i32" },
  fuse_reply_readlink: { parameters: ["pointer", "buffer"], result: "i32" },
  fuse_reply_open: { parameters: ["pointer", "pointer"], result: "i32" },
  fuse_reply_write: { parameters: ["pointer", "usize"], result: "i32" },
  fuse_reply_buf: { parameters: ["pointer", "buffer", "usize"], result: "i32" },
  fuse_reply_statfs: { parameters: ["pointer", "buffer"], result: "i32" },
  fuse_reply_xattr: { parameters: ["pointer", "usize"], result: "i32" },
  fuse_add_direntry: {
    parameters: ["pointer", "buffer", "usize", "buffer", "buffer", "i64"],
    result: "usize",
  },
  fuse_add_direntry_plus: {
    parameters: ["pointer", "buffer", "usize", "buffer", "buffer", "i64"],
    result: "usize",
  },
  fuse_req_ctx: { parameters: ["pointer"], result: "pointer" },
} as const;

/** The opened library. */
export type Libfuse3 = Deno.DynamicLibrary<typeof SYMBOLS>;

/**
 * The symbols bound when the library opens: those that mount. Binding a symbol costs start-up
 * time (~0.2-0.3 ms each, more on a loaded machine), and a mount server binds before it announces
 * the mount; the others are bound a group at a time, the first time one of the group is used
 * ({@link SERVE_SYMBOLS} as the serve loop starts, after the announcement; the rest later).
 */
export const EAGER_SYMBOLS = [
  "fuse_session_new",
  "fuse_session_mount",
] as const satisfies readonly (keyof typeof SYMBOLS)[];

/**
 * The symbols a read-only mount uses from its first request on: bound together at the first use
 * of one of them (the serve loop's first call). The rest (writes, creates, xattrs, opens, the
 * asynchronous receive, shutdown, …) are another such group.
 */
export const SERVE_SYMBOLS = [
  "fuse_session_fd",
  "fuse_session_receive_buf_sync",
  "fuse_session_process_buf",
  "fuse_session_exited",
  "fuse_reply_err",
  "fuse_reply_none",
  "fuse_reply_entry",
  "fuse_reply_attr",
  "fuse_reply_buf",
  // find, df and ls -l ask these early: binding the rest mid-walk costs ~5 ms once
  "fuse_reply_statfs",
  "fuse_reply_readlink",
] as const satisfies readonly (keyof typeof SYMBOLS)[];

/** Callback signatures of the low-level ops hd implements. */
export const CALLBACKS = {
  init: { parameters: ["pointer", "pointer"], result: "void" },
  lookup: { parameters: ["pointer", "u64", "pointer"], result: "void" },
  forget: { parameters: ["pointer", "u64", "u64"], result: "void" },
  forget_multi: { parameters: ["pointer", "usize", "pointer"], result: "void" },
  getattr: { parameters: ["pointer", "u64", "pointer"], result: "void" },
  setattr: { parameters: ["pointer", "u64", "pointer", "i32", "pointer"], result: "void" },
  readlink: { parameters: ["pointer", "u64"], result: "void" },
  mkdir: { parameters: ["pointer", "u64", "pointer", "u32"], result: "void" },
  unlink: { parameters: ["pointer", "u64", "pointer"], result: "void" },
  rmdir: { parameters: ["pointer", "u64", "pointer"], result: "void" },
  symlink: { parameters: ["pointer", "pointer", "u64", "pointer"], result: "void" },
  rename: {
    parameters: ["pointer", "u64", "pointer", "u64", "pointer", "u32"],
    result: "void",
  },
  open: { parameters: ["pointer", "u64", "pointer"], result: "void" },
  read: { parameters: ["pointer", "u64", "usize", "i64", "pointer"], result: "void" },
  write: {
    parameters: ["pointer", "u64", "pointer", "usize", "i64", "pointer"],
    result: "void",
  },
  flush: { parameters: ["pointer", "u64", "pointer"], result: "void" },
  release: { parameters: ["pointer", "u64", "pointer"], result: "void" },
  fsync: { parameters: ["pointer", "u64", "i32", "pointer"], result: "void" },
  opendir: { parameters: ["pointer", "u64", "pointer"], result: "void" },
  readdir: { parameters: ["pointer", "u64", "usize", "i64", "pointer"], result: "void" },
  readdirplus: { parameters: ["pointer", "u64", "usize", "i64", "pointer"], result: "void" },
  releasedir: { parameters: ["pointer", "u64", "pointer"], result: "void" },
  statfs: { parameters: ["pointer", "u64"], result: "void" },
  create: { parameters: ["pointer", "u64", "pointer", "u32", "pointer"], result: "void" },
  getxattr: { parameters: ["pointer", "u64", "pointer", "usize"], result: "void" },
  listxattr: { parameters: ["pointer", "u64", "usize"], result: "void" },
} as const;

/** Bits of `to_set` in setattr. */
export const FUSE_SET_ATTR = {
  MODE: 1 << 0,
  UID: 1 << 1,
  GID: 1 << 2,
  SIZE: 1 << 3,
  ATIME: 1 << 4,
  MTIME: 1 << 5,
  ATIME_NOW: 1 << 7,
  MTIME_NOW: 1 << 8,
  CTIME: 1 << 10,
} as const;

/** Capability bits of fuse_conn_info.want / capable that hd touches. */
export const FUSE_CAP = {
  ASYNC_READ: 1 << 0,
  SPLICE_WRITE: 1 << 7,
  SPLICE_MOVE: 1 << 8,
  SPLICE_READ: 1 << 9,
  READDIRPLUS: 1 << 13,
  READDIRPLUS_AUTO: 1 << 14,
  CACHE_SYMLINKS: 1 << 23,
} as const;

/** Opens libfuse3.so.3; throws an Error naming the paths tried when it is not installed. */
export function openLibfuse3(): Libfuse3 {
  const errors: string[] = [];
  for (const name of LIBFUSE3_NAMES) {
    try {
      // the serve loop's symbols bound at its first call, the rest (the ops' replies) at theirs
      return dlopenGroups(name, SYMBOLS, EAGER_SYMBOLS, [SERVE_SYMBOLS, []]);
    } catch (e) {
      errors.push(`${name}: ${(e as Error).message}`);
    }
  }
  throw new Error(`libfuse3.so.3 not found (${errors[0]})`);
}

/** Normalises a 64-bit callback argument (number or bigint) to a number. */
export function num(v: number | bigint): number {
  return typeof v === "bigint" ? Number(v) : v;
}
