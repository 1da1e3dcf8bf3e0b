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

/** Files larger than this are read in blocks instead of whole. */
export const STREAM_THRESHOLD = 16 << 20;

/** Yields the file's bytes in blocks of `blockSize` (views into one reused buffer). */
export function* readBlocks(path: string, blockSize = 4 << 20): Generator<Uint8Array> {
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
