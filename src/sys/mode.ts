/**
 * The file type bits of `st_mode` (Linux `<sys/stat.h>`), written once: nodes, image layers,
 * root filesystems, the FUSE projection and libc all read and write the same bits, and five
 * modules once kept their own copies.
 *
 * @example
 * ```ts
 * import { fileType, S_IFDIR, S_IFLNK } from "./mode.ts";
 * const mode = S_IFLNK | 0o777;
 * console.log(fileType(mode) === S_IFLNK, fileType(S_IFDIR | 0o755) === S_IFDIR); // true true
 * ```
 * @module
 */

/**
 * Mask of the file type bits of st_mode.
 *
 * @example
 * ```ts
 * import { S_IFMT, S_IFREG } from "./mode.ts";
 * console.log((0o100644 & S_IFMT) === S_IFREG); // true
 * ```
 */
export const S_IFMT = 0o170000;
/**
 * Socket.
 *
 * @example
 * ```ts
 * import { fileType, S_IFSOCK } from "./mode.ts";
 * console.log(fileType(0o140755) === S_IFSOCK); // true
 * ```
 */
export const S_IFSOCK = 0o140000;
/**
 * Symbolic link.
 *
 * @example
 * ```ts
 * import { S_IFLNK } from "./mode.ts";
 * const linkMode = S_IFLNK | 0o777;
 * ```
 */
export const S_IFLNK = 0o120000;
/**
 * Regular file.
 *
 * @example
 * ```ts
 * import { S_IFREG } from "./mode.ts";
 * const fileMode = S_IFREG | 0o644;
 * ```
 */
export const S_IFREG = 0o100000;
/**
 * Block device.
 *
 * @example
 * ```ts
 * import { S_IFBLK } from "./mode.ts";
 * const diskMode = S_IFBLK | 0o660;
 * ```
 */
export const S_IFBLK = 0o060000;
/**
 * Directory.
 *
 * @example
 * ```ts
 * import { S_IFDIR } from "./mode.ts";
 * const dirMode = S_IFDIR | 0o755;
 * ```
 */
export const S_IFDIR = 0o040000;
/**
 * Character device (with device number 0 it is an overlayfs whiteout).
 *
 * @example
 * ```ts
 * import { S_IFCHR } from "./mode.ts";
 * const whiteoutMode = S_IFCHR | 0;
 * ```
 */
export const S_IFCHR = 0o020000;
/**
 * FIFO (named pipe).
 *
 * @example
 * ```ts
 * import { S_IFIFO } from "./mode.ts";
 * const fifoMode = S_IFIFO | 0o644;
 * ```
 */
export const S_IFIFO = 0o010000;

/**
 * The file type bits of `mode` (one of the `S_IF*` constants, or 0 when none is set).
 *
 * @example
 * ```ts
 * import { fileType, S_IFREG } from "./mode.ts";
 * console.log(fileType(0o100644) === S_IFREG); // true
 * ```
 */
export function fileType(mode: number): number {
  return mode & S_IFMT;
}
