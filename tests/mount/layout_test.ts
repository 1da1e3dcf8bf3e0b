/**
 * Checks the struct layouts in ffi/libfuse3.ts against the libfuse3-dev headers: compiles a tiny
 * C program that prints offsetof/sizeof and compares every figure.
 */
import { assertEquals } from "../_assert.ts";
import { LAYOUT } from "../../ffi/libfuse3.ts";
import { skipUnless, tempDir, testIf } from "../_helpers.ts";

const C = `
#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#define P(name, v) printf("%s %ld\\n", name, (long)(v))
#define OP(f) P("ops." #f, offsetof(struct fuse_lowlevel_ops, f))
int main(void) {
  P("opsSize", sizeof(struct fuse_lowlevel_ops));
  OP(init); OP(destroy); OP(lookup); OP(forget); OP(getattr); OP(setattr); OP(readlink);
  OP(mknod); OP(mkdir); OP(unlink); OP(rmdir); OP(symlink); OP(rename); OP(link); OP(open);
  OP(read); OP(write); OP(flush); OP(release); OP(fsync); OP(opendir); OP(readdir);
  OP(releasedir); OP(fsyncdir); OP(statfs); OP(setxattr); OP(getxattr); OP(listxattr);
  OP(removexattr); OP(access); OP(create); OP(getlk); OP(setlk); OP(bmap); OP(ioctl); OP(poll);
  OP(write_buf); OP(retrieve_reply); OP(forget_multi); OP(flock); OP(fallocate);
  OP(readdirplus); OP(copy_file_range); OP(lseek);
  P("args.size", sizeof(struct fuse_args)); P("args.argc", offsetof(struct fuse_args, argc));
  P("args.argv", offsetof(struct fuse_args, argv));
  P("args.allocated", offsetof(struct fuse_args, allocated));
  P("entry.size", sizeof(struct fuse_entry_param));
  P("entry.ino", offsetof(struct fuse_entry_param, ino));
  P("entry.generation", offsetof(struct fuse_entry_param, generation));
  P("entry.attr", offsetof(struct fuse_entry_param, attr));
  P("entry.attr_timeout", offsetof(struct fuse_entry_param, attr_timeout));
  P("entry.entry_timeout", offsetof(struct fuse_entry_param, entry_timeout));
  P("stat.size", sizeof(struct stat)); P("stat.dev", offsetof(struct stat, st_dev));
  P("stat.ino", offsetof(struct stat, st_ino)); P("stat.nlink", offsetof(struct stat, st_nlink));
  P("stat.mode", offsetof(struct stat, st_mode)); P("stat.uid", offsetof(struct stat, st_uid));
  P("stat.gid", offsetof(struct stat, st_gid)); P("stat.rdev", offsetof(struct stat, st_rdev));
  P("stat.st_size", offsetof(struct stat, st_size));
  P("stat.blksize", offsetof(struct stat, st_blksize));
  P("stat.blocks", offsetof(struct stat, st_blocks));
  P("stat.atim", offsetof(struct stat, st_atim)); P("stat.mtim", offsetof(struct stat, st_mtim));
  P("stat.ctim", offsetof(struct stat, st_ctim));
  P("fileInfo.size", sizeof(struct fuse_file_info));
  P("fileInfo.flags", offsetof(struct fuse_file_info, flags));
  P("fileInfo.bits", offsetof(struct fuse_file_info, flags) + sizeof(int));
  P("fileInfo.fh", offsetof(struct fuse_file_info, fh));
  P("fileInfo.lock_owner", offsetof(struct fuse_file_info, lock_owner));
  P("fileInfo.poll_events", offsetof(struct fuse_file_info, poll_events));
  { const char *names[] = {"writepage","direct_io","keep_cache","flush","nonseekable",
      "flock_release","cache_readdir","noflush"};
    for (int i = 0; i < 8; i++) {
      struct fuse_file_info fi; memset(&fi, 0, sizeof fi);
      switch (i) { case 0: fi.writepage = 1; break; case 1: fi.direct_io = 1; break;
        case 2: fi.keep_cache = 1; break; case 3: fi.flush = 1; break;
        case 4: fi.nonseekable = 1; break; case 5: fi.flock_release = 1; break;
        case 6: fi.cache_readdir = 1; break; case 7: fi.noflush = 1; break; }
      unsigned int w; memcpy(&w, (char *)&fi + 4, 4);
      printf("fileInfoBits.%s %d\\n", names[i], __builtin_ctz(w));
    } }
  P("buf.size", sizeof(struct fuse_buf)); P("buf.size_field", offsetof(struct fuse_buf, size));
  P("buf.flags", offsetof(struct fuse_buf, flags)); P("buf.mem", offsetof(struct fuse_buf, mem));
  P("buf.fd", offsetof(struct fuse_buf, fd)); P("buf.pos", offsetof(struct fuse_buf, pos));
  P("conn.size", sizeof(struct fuse_conn_info));
  P("conn.max_write", offsetof(struct fuse_conn_info, max_write));
  P("conn.max_read", offsetof(struct fuse_conn_info, max_read));
  P("conn.max_readahead", offsetof(struct fuse_conn_info, max_readahead));
  P("conn.capable", offsetof(struct fuse_conn_info, capable));
  P("conn.want", offsetof(struct fuse_conn_info, want));
  P("statvfs.size", sizeof(struct statvfs));
  P("statvfs.bsize", offsetof(struct statvfs, f_bsize));
  P("statvfs.frsize", offsetof(struct statvfs, f_frsize));
  P("statvfs.blocks", offsetof(struct statvfs, f_blocks));
  P("statvfs.bfree", offsetof(struct statvfs, f_bfree));
  P("statvfs.bavail", offsetof(struct statvfs, f_bavail));
  P("statvfs.files", offsetof(struct statvfs, f_files));
  P("statvfs.ffree", offsetof(struct statvfs, f_ffree));
  P("statvfs.favail", offsetof(struct statvfs, f_favail));
  P("statvfs.fsid", offsetof(struct statvfs, f_fsid));
  P("statvfs.flag", offsetof(struct statvfs, f_flag));
  P("statvfs.namemax", offsetof(struct statvfs, f_namemax));
  P("ctx.uid", offsetof(struct fuse_ctx, uid)); P("ctx.gid", offsetof(struct fuse_ctx, gid));
  P("ctx.pid", offsetof(struct fuse_ctx, pid)); P("ctx.umask", offsetof(struct fuse_ctx, umask));
  P("forget.size", sizeof(struct fuse_forget_data));
  P("forget.ino", offsetof(struct fuse_forget_data, ino));
  P("forget.nlookup", offsetof(struct fuse_forget_data, nlookup));
  return 0;
}
`;

function flatten(o: Record<string, unknown>, prefix = ""): Map<string, number> {
  const m = new Map<string, number>();
  for (const [k, v] of Object.entries(o)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (typeof v === "number") m.set(key, v);
    else for (const [kk, vv] of flatten(v as Record<string, unknown>, key)) m.set(kk, vv);
  }
  return m;
}

testIf(
  skipUnless({ commands: ["cc"], paths: ["/usr/include/fuse3/fuse_lowlevel.h"] }),
  "ffi/libfuse3.ts layouts match the libfuse3-dev headers",
  () => {
    using tmp = tempDir();
    Deno.writeTextFileSync(`${tmp.path}/l.c`, C);
    const cc = new Deno.Command("cc", {
      args: ["-I/usr/include/fuse3", "-o", `${tmp.path}/l`, `${tmp.path}/l.c`],
      stderr: "piped",
    }).outputSync();
    if (!cc.success) throw new Error(new TextDecoder().decode(cc.stderr));
    const out = new TextDecoder().decode(new Deno.Command(`${tmp.path}/l`).outputSync().stdout);
    const c = new Map(
      out.trim().split("\n").map((l) => l.split(" ")).map(([k, v]) => [k, Number(v)]),
    );
    const ours = flatten(LAYOUT as unknown as Record<string, unknown>);
    for (const [k, v] of c) assertEquals(ours.get(k), v, `LAYOUT.${k}`);
    // Every constant we declare was checked.
    for (const k of ours.keys()) assertEquals(c.has(k), true, `LAYOUT.${k} is not checked`);
  },
);
