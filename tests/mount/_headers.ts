/**
 * The struct layouts as the C compiler sees them: a small C program, built against the kernel's
 * linux/fuse.h, libfuse3-dev's fuse_lowlevel.h and glibc, prints `sizeof`/`offsetof` of every
 * struct and field hd encodes or hands to libfuse. The layout test compares ffi/libfuse3.ts's and
 * src/mount/wire.ts's constants with these figures; the wire test reads encoded bytes back at
 * these offsets (never at the constants under test).
 * @module
 */
import { skipUnless, tempDir } from "../_helpers.ts";

/** Why the C figures cannot be had here (null when they can). */
export const HEADERS_SKIP = skipUnless({
  commands: ["cc"],
  paths: ["/usr/include/fuse3/fuse_lowlevel.h", "/usr/include/linux/fuse.h"],
});

const C = `
#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#define P(name, v) printf("%s %ld\\n", name, (long)(v))
#define SIZE(key, T) P(key ".sizeof", sizeof(T))
#define OFF(key, T, f) P(key "." #f, offsetof(T, f))
#define OP(f) P("LAYOUT.ops." #f, offsetof(struct fuse_lowlevel_ops, f))
int main(void) {
  /* ffi/libfuse3.ts LAYOUT: what the session hands to libfuse. */
  P("LAYOUT.opsSize", sizeof(struct fuse_lowlevel_ops));
  OP(init); OP(destroy); OP(lookup); OP(forget); OP(getattr); OP(setattr); OP(readlink);
  OP(mknod); OP(mkdir); OP(unlink); OP(rmdir); OP(symlink); OP(rename); OP(link); OP(open);
  OP(read); OP(write); OP(flush); OP(release); OP(fsync); OP(opendir); OP(readdir);
  OP(releasedir); OP(fsyncdir); OP(statfs); OP(setxattr); OP(getxattr); OP(listxattr);
  OP(removexattr); OP(access); OP(create); OP(getlk); OP(setlk); OP(bmap); OP(ioctl); OP(poll);
  OP(write_buf); OP(retrieve_reply); OP(forget_multi); OP(flock); OP(fallocate);
  OP(readdirplus); OP(copy_file_range); OP(lseek);
  P("LAYOUT.args.size", sizeof(struct fuse_args));
  OFF("LAYOUT.args", struct fuse_args, argc); OFF("LAYOUT.args", struct fuse_args, argv);
  OFF("LAYOUT.args", struct fuse_args, allocated);
  P("LAYOUT.buf.size", sizeof(struct fuse_buf));
  P("LAYOUT.buf.size_field", offsetof(struct fuse_buf, size));
  OFF("LAYOUT.buf", struct fuse_buf, flags); OFF("LAYOUT.buf", struct fuse_buf, mem);
  OFF("LAYOUT.buf", struct fuse_buf, fd); OFF("LAYOUT.buf", struct fuse_buf, pos);
  P("LAYOUT.conn.size", sizeof(struct fuse_conn_info));
  OFF("LAYOUT.conn", struct fuse_conn_info, max_write);
  OFF("LAYOUT.conn", struct fuse_conn_info, max_read);
  OFF("LAYOUT.conn", struct fuse_conn_info, max_readahead);
  OFF("LAYOUT.conn", struct fuse_conn_info, capable);
  OFF("LAYOUT.conn", struct fuse_conn_info, want);
  P("LAYOUT.forget.size", sizeof(struct fuse_forget_data));
  OFF("LAYOUT.forget", struct fuse_forget_data, ino);
  OFF("LAYOUT.forget", struct fuse_forget_data, nlookup);

  /* src/mount/wire.ts: requests and replies. */
  SIZE("STAT", struct stat);
  OFF("STAT", struct stat, st_dev); OFF("STAT", struct stat, st_ino);
  OFF("STAT", struct stat, st_nlink); OFF("STAT", struct stat, st_mode);
  OFF("STAT", struct stat, st_uid); OFF("STAT", struct stat, st_gid);
  OFF("STAT", struct stat, st_rdev); OFF("STAT", struct stat, st_size);
  OFF("STAT", struct stat, st_blksize); OFF("STAT", struct stat, st_blocks);
  OFF("STAT", struct stat, st_atim); OFF("STAT", struct stat, st_mtim);
  OFF("STAT", struct stat, st_ctim);
  P("timespec.tv_sec", offsetof(struct timespec, tv_sec));
  P("timespec.tv_nsec", offsetof(struct timespec, tv_nsec));

  SIZE("FUSE_ENTRY_PARAM", struct fuse_entry_param);
  OFF("FUSE_ENTRY_PARAM", struct fuse_entry_param, ino);
  OFF("FUSE_ENTRY_PARAM", struct fuse_entry_param, generation);
  OFF("FUSE_ENTRY_PARAM", struct fuse_entry_param, attr);
  OFF("FUSE_ENTRY_PARAM", struct fuse_entry_param, attr_timeout);
  OFF("FUSE_ENTRY_PARAM", struct fuse_entry_param, entry_timeout);

  SIZE("FUSE_ATTR", struct fuse_attr);
  OFF("FUSE_ATTR", struct fuse_attr, ino); OFF("FUSE_ATTR", struct fuse_attr, size);
  OFF("FUSE_ATTR", struct fuse_attr, blocks); OFF("FUSE_ATTR", struct fuse_attr, atime);
  OFF("FUSE_ATTR", struct fuse_attr, mtime); OFF("FUSE_ATTR", struct fuse_attr, ctime);
  OFF("FUSE_ATTR", struct fuse_attr, atimensec); OFF("FUSE_ATTR", struct fuse_attr, mtimensec);
  OFF("FUSE_ATTR", struct fuse_attr, ctimensec); OFF("FUSE_ATTR", struct fuse_attr, mode);
  OFF("FUSE_ATTR", struct fuse_attr, nlink); OFF("FUSE_ATTR", struct fuse_attr, uid);
  OFF("FUSE_ATTR", struct fuse_attr, gid); OFF("FUSE_ATTR", struct fuse_attr, rdev);
  OFF("FUSE_ATTR", struct fuse_attr, blksize); OFF("FUSE_ATTR", struct fuse_attr, flags);

  SIZE("FUSE_ENTRY_OUT", struct fuse_entry_out);
  OFF("FUSE_ENTRY_OUT", struct fuse_entry_out, nodeid);
  OFF("FUSE_ENTRY_OUT", struct fuse_entry_out, generation);
  OFF("FUSE_ENTRY_OUT", struct fuse_entry_out, entry_valid);
  OFF("FUSE_ENTRY_OUT", struct fuse_entry_out, attr_valid);
  OFF("FUSE_ENTRY_OUT", struct fuse_entry_out, entry_valid_nsec);
  OFF("FUSE_ENTRY_OUT", struct fuse_entry_out, attr_valid_nsec);
  OFF("FUSE_ENTRY_OUT", struct fuse_entry_out, attr);

  SIZE("FUSE_DIRENT", struct fuse_dirent);
  OFF("FUSE_DIRENT", struct fuse_dirent, ino); OFF("FUSE_DIRENT", struct fuse_dirent, off);
  OFF("FUSE_DIRENT", struct fuse_dirent, namelen); OFF("FUSE_DIRENT", struct fuse_dirent, type);
  OFF("FUSE_DIRENT", struct fuse_dirent, name);
  SIZE("FUSE_DIRENTPLUS", struct fuse_direntplus);
  OFF("FUSE_DIRENTPLUS", struct fuse_direntplus, entry_out);
  OFF("FUSE_DIRENTPLUS", struct fuse_direntplus, dirent);
  P("FUSE_NAME_OFFSET", FUSE_NAME_OFFSET);
  P("FUSE_NAME_OFFSET_DIRENTPLUS", FUSE_NAME_OFFSET_DIRENTPLUS);
  P("FUSE_DIRENT_ALIGNMENT", FUSE_DIRENT_ALIGN(1));

  SIZE("FUSE_FILE_INFO", struct fuse_file_info);
  OFF("FUSE_FILE_INFO", struct fuse_file_info, flags);
  P("FUSE_FILE_INFO.bits", offsetof(struct fuse_file_info, flags) + sizeof(int));
  OFF("FUSE_FILE_INFO", struct fuse_file_info, fh);
  OFF("FUSE_FILE_INFO", struct fuse_file_info, lock_owner);
  OFF("FUSE_FILE_INFO", struct fuse_file_info, poll_events);
  { const char *names[] = {"writepage","direct_io","keep_cache","flush","nonseekable",
      "flock_release","cache_readdir","noflush"};
    for (int i = 0; i < 8; i++) {
      struct fuse_file_info fi; memset(&fi, 0, sizeof fi);
      switch (i) { case 0: fi.writepage = 1; break; case 1: fi.direct_io = 1; break;
        case 2: fi.keep_cache = 1; break; case 3: fi.flush = 1; break;
        case 4: fi.nonseekable = 1; break; case 5: fi.flock_release = 1; break;
        case 6: fi.cache_readdir = 1; break; case 7: fi.noflush = 1; break; }
      unsigned int w; memcpy(&w, (char *)&fi + offsetof(struct fuse_file_info, flags) + 4, 4);
      printf("FUSE_FILE_INFO_BITS.%s %d\\n", names[i], __builtin_ctz(w));
    } }

  SIZE("STATVFS", struct statvfs);
  OFF("STATVFS", struct statvfs, f_bsize); OFF("STATVFS", struct statvfs, f_frsize);
  OFF("STATVFS", struct statvfs, f_blocks); OFF("STATVFS", struct statvfs, f_bfree);
  OFF("STATVFS", struct statvfs, f_bavail); OFF("STATVFS", struct statvfs, f_files);
  OFF("STATVFS", struct statvfs, f_ffree); OFF("STATVFS", struct statvfs, f_favail);
  OFF("STATVFS", struct statvfs, f_fsid); OFF("STATVFS", struct statvfs, f_flag);
  OFF("STATVFS", struct statvfs, f_namemax);

  SIZE("FUSE_CTX", struct fuse_ctx);
  OFF("FUSE_CTX", struct fuse_ctx, uid); OFF("FUSE_CTX", struct fuse_ctx, gid);
  OFF("FUSE_CTX", struct fuse_ctx, pid); OFF("FUSE_CTX", struct fuse_ctx, umask);
  return 0;
}
`;

let cached: Map<string, number> | null = null;

/** Compiles and runs the C program once per process; `key` → figure, e.g. `STAT.st_ino` → 8. */
export function headerFigures(): Map<string, number> {
  if (cached) return cached;
  using tmp = tempDir();
  Deno.writeTextFileSync(`${tmp.path}/l.c`, C);
  const cc = new Deno.Command("cc", {
    args: ["-I/usr/include/fuse3", "-o", `${tmp.path}/l`, `${tmp.path}/l.c`],
    stderr: "piped",
  }).outputSync();
  if (!cc.success) throw new Error(new TextDecoder().decode(cc.stderr));
  const run = new Deno.Command(`${tmp.path}/l`, { stdout: "piped" }).outputSync();
  if (!run.success) throw new Error(`the layout program failed (exit ${run.code})`);
  const out = new TextDecoder().decode(run.stdout);
  cached = new Map(
    out.trim().split("\n").map((l) => l.split(" ")).map(([k, v]) => [k, Number(v)]),
  );
  return cached;
}

/** One figure; throws when the C program does not print `key` (a typo in a test). */
export function fig(key: string): number {
  const v = headerFigures().get(key);
  if (v === undefined) throw new Error(`the C headers program prints no ${key}`);
  return v;
}
