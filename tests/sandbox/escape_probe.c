/*
 * Escape probe for the sandbox tests (built with `gcc -static` by tests/sandbox/escape_test.ts and
 * run inside a sandbox): tries the classic ways out of a chroot-style sandbox and prints one line
 * per attempt, "blocked" or "ESCAPED". Exit status: the number of attempts that got through.
 *
 * usage: probe HOST_DIR BLOCK_MAJOR BLOCK_MINOR
 *   HOST_DIR    a host directory outside the sandbox's root (the test's own temp dir)
 *   BLOCK_*     device numbers of the host's root disk
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static int escaped = 0;

static void report(const char *what, int ok, int err) {
  if (ok) {
    escaped++;
    printf("%s: ESCAPED\n", what);
  } else {
    printf("%s: blocked (%s)\n", what, strerror(err));
  }
  fflush(stdout);
}

/* the classic chroot escape: chroot into a subdirectory, keep a handle on the old root, climb */
/* evaluates `expr` before reading errno (argument order is unspecified in C) */
#define TRY(what, expr)         \
  do {                          \
    errno = 0;                  \
    int ok_ = (expr);           \
    report(what, ok_, errno);   \
  } while (0)

static void chroot_escape(const char *host_dir) {
  char marker[4096];
  snprintf(marker, sizeof marker, "%s/marker-chroot", host_dir);
  int old = open("/", O_RDONLY | O_DIRECTORY);
  mkdir("/tmp/probe-jail", 0755);
  if (chroot("/tmp/probe-jail") != 0) {
    report("chroot escape (chroot)", 0, errno);
    return;
  }
  if (fchdir(old) != 0) {
    report("chroot escape (fchdir)", 0, errno);
    return;
  }
  for (int i = 0; i < 64; i++) chdir("..");
  if (chroot(".") != 0) {
    report("chroot escape (chroot .)", 0, errno);
    return;
  }
  struct stat st;
  int found = stat(host_dir, &st) == 0;
  int fd = open(marker, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  int err = errno;
  if (fd >= 0) {
    write(fd, "escaped\n", 8);
    close(fd);
  }
  report("chroot escape: host dir visible", found, found ? 0 : ENOENT);
  report("chroot escape: marker written on the host", fd >= 0, err);
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: probe HOST_DIR MAJOR MINOR\n");
    return 100;
  }
  const char *host_dir = argv[1];
  unsigned maj = atoi(argv[2]), min = atoi(argv[3]);
  char path[4096];

  snprintf(path, sizeof path, "%s/marker-direct", host_dir);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  int ferr = errno;
  report("write into the host dir", fd >= 0, ferr);
  if (fd >= 0) close(fd);

  mkdir("/tmp/probe-mnt", 0755);
  TRY("mount tmpfs", mount("tmpfs", "/tmp/probe-mnt", "tmpfs", 0, NULL) == 0);
  TRY("remount / read-write", mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND, NULL) == 0);
  TRY("remount /proc/sys read-write", mount(NULL, "/proc/sys", NULL, MS_REMOUNT | MS_BIND, NULL) == 0);
  TRY("mount proc anew", mount("proc", "/tmp/probe-mnt", "proc", 0, NULL) == 0);

  /* a block device node of the host's root disk: made (CAP_MKNOD) but must not be usable */
  unlink("/probe-blk");
  int made = mknod("/probe-blk", S_IFBLK | 0600, makedev(maj, min)) == 0;
  int merr = errno;
  if (made) {
    int bfd = open("/probe-blk", O_RDONLY);
    int berr = errno;
    char buf[512];
    int got = bfd >= 0 && read(bfd, buf, sizeof buf) > 0;
    if (bfd >= 0) close(bfd);
    report("read the host's root disk through mknod", got, bfd >= 0 ? EIO : berr);
    unlink("/probe-blk");
  } else {
    report("read the host's root disk through mknod", 0, merr);
  }

  /* open_by_handle_at with a forged handle for inode 2 (the "shocker" escape) */
  struct {
    unsigned int handle_bytes;
    int handle_type;
    unsigned char f_handle[8];
  } h = {8, 1, {2, 0, 0, 0, 0, 0, 0, 0}};
  int rootfd = open("/", O_RDONLY | O_DIRECTORY);
  errno = 0;
  long r = syscall(SYS_open_by_handle_at, rootfd, &h, O_RDONLY);
  int herr = errno;
  report("open_by_handle_at", r >= 0, herr);

  int kfd = open("/proc/kcore", O_RDONLY);
  int kerr = errno;
  char kb[64];
  long kn = kfd >= 0 ? read(kfd, kb, sizeof kb) : -1;
  if (kfd >= 0) close(kfd);
  report("read /proc/kcore", kn > 0, kfd >= 0 ? EIO : kerr);

  TRY("init_module", syscall(SYS_init_module, "\0asm", 4, "") == 0);
  TRY("finit_module", syscall(SYS_finit_module, 0, "", 0) == 0);
  TRY("unshare a user namespace", unshare(CLONE_NEWUSER) == 0);
  TRY("unshare a mount namespace", unshare(CLONE_NEWNS) == 0);

  chroot_escape(host_dir);
  printf("escaped: %d\n", escaped);
  return escaped;
}
