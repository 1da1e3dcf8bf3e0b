/**
 * Reading a file in fixed-size blocks (large files are chunked as a stream, never read whole).
 *
 * @example
 * ```ts
 * import { readBlocks, STREAM_THRESHOLD } from "./blocks.ts";
 * for (const block of readBlocks("/var/tmp/big.iso")) console.log(block.length);
 * ```
 * @module
 */

import { FileReader } from "./readfile.ts";

/** Files larger than this are read in blocks instead of whole. */
export const STREAM_THRESHOLD = 16 << 20;

let libcReader: FileReader | null | undefined;
/** The reader through libc (files opened following no symlink), or null without FFI. */
function reader(): FileReader | null {
  if (libcReader === undefined) libcReader = FileReader.open();
  return libcReader;
}

/**
 * Yields the bytes of the regular file at `path` in blocks of `blockSize` (views into one reused
 * buffer). Below the trusted `root` no symlink is followed, and nothing but a regular file is
 * read (src/sys/nofollow.ts).
 */
export function* readBlocks(
  path: string,
  blockSize = 4 << 20,
  root?: string,
): Generator<Uint8Array> {
  const r = reader();
  if (r) {
    const fd = r.open(path, root);
    if (fd instanceof Error) throw fd;
    yield* r.blocks(fd, path, blockSize);
    return;
  }
  const f = Deno.openSync(path, { read: true });
  try {
    const buf = new Uint8Array(blockSize);
    while (true) {
      const n = f.readSync(buf);
      if (n === null || n === 0) return;
      yield buf.subarray(0, n);
    }
  } finally {
    f.close();
  }
}

let whole = new Uint8Array(1 << 16);

/**
 * Reads a whole regular file (expected `size` bytes, at most {@link STREAM_THRESHOLD} or so) into
 * one reused buffer and returns a view of it, valid until the next call; below the trusted
 * `root` no symlink is followed (see {@link readBlocks}). A scan reads every file once and keeps
 * none of the bytes: a fresh buffer per file (`Deno.readFileSync`) is garbage the collector frees
 * late, and the malloc heap grows far past the live data.
 */
export function readWhole(path: string, size: number, root?: string): Uint8Array {
  const r = reader();
  if (r) {
    const fd = r.open(path, root);
    if (fd instanceof Error) throw fd;
    const bytes = r.read(fd, path, size);
    if (bytes instanceof Error) throw bytes;
    return bytes;
  }
  const f = Deno.openSync(path, { read: true });
  try {
    if (whole.length < size + 1) whole = new Uint8Array(Math.max(size + 1, whole.length * 2));
    let n = 0;
    while (true) {
      // The file may have grown since its lstat: keep one spare byte to notice, and grow.
      if (n === whole.length) {
        const b = new Uint8Array(whole.length * 2);
        b.set(whole);
        whole = b;
      }
      const got = f.readSync(whole.subarray(n));
      if (got === null || got === 0) break;
      n += got;
    }
    return whole.subarray(0, n);
  } finally {
    f.close();
  }
}
