/**
 * FastCDC content-defined chunking (Xia et al., 2020: gear hash with normalized chunking).
 *
 * Cut points depend only on nearby bytes, so an insertion in the middle of a file changes at most
 * the chunks around it. Sizes: min 4 KiB, average 16 KiB, max 64 KiB. The gear table is derived
 * from BLAKE3 and is part of the store format: changing it changes every id, so it never changes.
 *
 * @example
 * ```ts
 * import { chunkBoundaries } from "./chunk.ts";
 * declare const bytes: Uint8Array;
 * for (const [start, end] of chunkBoundaries(bytes)) console.log(end - start);
 * ```
 * @module
 */

/** Minimum chunk size in bytes (a smaller file is one chunk). */
export const MIN_CHUNK = 4 * 1024;
/** Target average chunk size in bytes. */
export const AVG_CHUNK = 16 * 1024;
/** Maximum chunk size in bytes. */
export const MAX_CHUNK = 64 * 1024;

/**
 * The 256-entry gear table: the first 4 bytes (big-endian) of BLAKE3("hd-fastcdc-gear-v1:" + i).
 * Written out rather than derived when the module loads: 256 hashes in cold JS cost ~3 ms of
 * every process that chunks (the supervisor, the ingest workers); tests/cas/chunk_test.ts derives
 * it again and compares.
 */
// deno-fmt-ignore
export const GEAR: Uint32Array = new Uint32Array([
  0x0a0219ac, 0x32347106, 0x1ee9aab3, 0x83118dd1, 0x3216533e, 0x9fdb0b39, 0x1fbcbb16, 0x2b24457f,
  0x24d34895, 0xec7130cb, 0xee69fe71, 0xfbfd12b2, 0xdd3b859c, 0x2cc645d7, 0xe1fc2583, 0x095d9992,
  0x03d6e8d3, 0xa37d45ac, 0x16881a04, 0x5bd1ad6b, 0x0563f2a1, 0x10f8c299, 0x23e98010, 0x5fceb13e,
  0x0a9d2729, 0x10a981d6, 0x03e178ef, 0xe980963a, 0x4b265a94, 0xaf5a43b2, 0x3f2c39a2, 0xdb7924da,
  0x66642eb5, 0x3a98ebd4, 0xa92cdd7e, 0xbe9687d8, 0x0e9010a6, 0xe9ec8965, 0x6f08f76b, 0x2b08f163,
  0x672f72ed, 0x85c329b6, 0xf18568a0, 0xc7b199e1, 0xc4a5ea0b, 0x563890ef, 0x9c4e649a, 0x4cf143ab,
  0xfb173033, 0x6271021f, 0x605fd1f5, 0xc68c6506, 0xa0568c45, 0x6ca523c0, 0xc9fcc19f, 0x922c62e3,
  0x37d797a9, 0x51b68039, 0x2bb2d526, 0x021cd92d, 0x376f05c7, 0xad890c27, 0xb562dc1c, 0x117908e3,
  0x9a11e719, 0x0e11eae0, 0x5a4113d6, 0xa11cde3a, 0x6bbd931f, 0x9354f9d8, 0xc86b9ac4, 0x99dfb7b1,
  0x8a8a8495, 0x234d88d8, 0x6f7ade13, 0xbaeb1aa4, 0x7e308740, 0xc4976ef7, 0x4369796b, 0x40543824,
  0x03e8b2ca, 0xf6d28105, 0x1c63a9ac, 0x0aa1be5b, 0xdb67d2d5, 0xfe15f23c, 0x8fe7cb1e, 0xe04f1fc3,
  0xe74e8c5d, 0xbc7e74c4, 0xff4780c7, 0xbaf56102, 0x9bf2a9ef, 0x1b78a79f, 0x5dd3f718, 0x24096fbf,
  0x0cbf9006, 0xde9c0b83, 0x493e82f5, 0x0e865580, 0x9cfc7d63, 0x52992bb5, 0xf0c84d05, 0x61631b39,
  0x6d1ff4ee, 0xe9843e47, 0x415f80ee, 0x6f903fa5, 0xbb9f80c0, 0xa9a3b5ff, 0x2a6347bd, 0x75711ae2,
  0xc1738af5, 0x775a317b, 0x61d0f3ee, 0xdfdfa969, 0x84248fd7, 0xcb962557, 0x317d09e8, 0x72747319,
  0xd1861f93, 0x6fcaab54, 0xd794731c, 0x7696b476, 0x0051de2f, 0xdbb59d18, 0x04803826, 0x9ae8d663,
  0x3b6d5763, 0x9d426eb5, 0xdbaf3d9d, 0x184e71c1, 0xa5d551fb, 0xaf4b7525, 0xbef58f4e, 0xd5d2ad9b,
  0x3442c050, 0x386da168, 0x74fbd170, 0x5f112af3, 0x851fd831, 0x50037309, 0xddc79954, 0xc27169ef,
  0x23433db8, 0xac5ae971, 0x5b77658a, 0x3d77d704, 0x7e98c7e4, 0x0bc93ca4, 0x87f9dd4b, 0x6644ac9c,
  0x5a5405ee, 0x2f72c456, 0x2d64b881, 0x002e65c9, 0xce6a38be, 0x8358a2b3, 0x968af765, 0x54c194d6,
  0x57a9f89f, 0x7c80b837, 0xb57f64bb, 0x85c2c7a3, 0x7f1df5b8, 0x654f57de, 0xc48c594b, 0x78439074,
  0xa22a40b8, 0xec9cf8ce, 0xfefd733c, 0x9295d0da, 0x8753a193, 0xa5285511, 0x16b084ab, 0x251b00f1,
  0x8cae13b7, 0xe0d99a13, 0x355eec65, 0x3ed35e57, 0x87f3d49b, 0xaff41209, 0x87587bc3, 0x91ff4b3d,
  0x1a63f3ab, 0x0a1893ca, 0xae9d4802, 0x9cca5e2c, 0x938ad150, 0x20067097, 0xff07dd5e, 0x705814f7,
  0xcaf714ca, 0x498997e5, 0xb885f760, 0x615a1f8b, 0x0bfd2489, 0x2be5c3bc, 0xe2a91828, 0x41c27727,
  0x29df590b, 0xf33c0ae5, 0xd9937a90, 0xac3b6705, 0x85f8dc74, 0x3385c07a, 0x557b553c, 0x1bf433c3,
  0xa8b7b4bc, 0x2fa8b6c5, 0xc5ceb053, 0x6f5ced8a, 0x7f65775b, 0xd46a65a7, 0xda0608d5, 0x6a949fb6,
  0x2fc5ed1c, 0xdd47036e, 0x9805284b, 0xa0ff3772, 0xa39c7423, 0x2d1f0316, 0x2b7aa85c, 0xee36b9cd,
  0xc08edcc1, 0x01bc2746, 0x34d676a6, 0xe8015e18, 0xa5f22f9f, 0x78b59001, 0x4d51f33d, 0x7951bf84,
  0x78c88dab, 0x3f9d74a1, 0x2556c0b3, 0xd122c6e5, 0xebc7c7ab, 0x7d2b0bee, 0x33810d87, 0x558a1a5b,
  0x903a32d6, 0xb149382f, 0x6e200ab0, 0x594d4eef, 0x0909d893, 0x989cd487, 0xc4552b20, 0x585a08d8,
  0xa9c3149f, 0xfe28d815, 0xe78a9626, 0xe9c2adf6, 0x1e2692bb, 0x8781e0c9, 0x74b20f87, 0x0e4b6667,
]);

// Normalized chunking, level 1: a harder mask (1 more bit than log2(avg)) before the average
// size, an easier one (1 fewer bit) after it. The bits sit at the top of the 32-bit gear hash,
// where each bit depends on the most recent 19..32 bytes. Level 1 rather than 2: measured on
// random 1 MiB files (119 seeds, a prototype with these masks), level 2 made 28% of 4 KiB
// insertions change 3-9 chunks (level 1: 7%, 3-6 chunks), at the price of a slightly wider size
// spread.
const MASK_S = 0xfffe0000 | 0; // 15 bits
const MASK_L = 0xfff80000 | 0; // 13 bits

/**
 * Length of the first chunk of `buf[start..end)`. When `final` is false and no cut point is found
 * before the end of the window, returns -1 (more bytes are needed to decide).
 */
export function nextCut(buf: Uint8Array, start: number, end: number, final: boolean): number {
  const len = end - start;
  if (len <= MIN_CHUNK) return final ? len : -1;
  const n = len < MAX_CHUNK ? len : MAX_CHUNK;
  const normal = n < AVG_CHUNK ? n : AVG_CHUNK;
  const gear = GEAR;
  let h = 0;
  // Warm the 32-byte window up first, so a decision depends on content only, not on where
  // the chunk started.
  for (let w = start + MIN_CHUNK - 32; w < start + MIN_CHUNK; w++) {
    h = ((h << 1) + gear[buf[w]]) | 0;
  }
  let i = start + MIN_CHUNK;
  const normalEnd = start + normal;
  const hardEnd = start + n;
  for (; i < normalEnd; i++) {
    h = ((h << 1) + gear[buf[i]]) | 0;
    if ((h & MASK_S) === 0) return i + 1 - start;
  }
  for (; i < hardEnd; i++) {
    h = ((h << 1) + gear[buf[i]]) | 0;
    if ((h & MASK_L) === 0) return i + 1 - start;
  }
  if (n === MAX_CHUNK) return MAX_CHUNK;
  return final ? len : -1;
}

/** All chunk boundaries of a complete buffer as `[start, end)` pairs. */
export function* chunkBoundaries(buf: Uint8Array): Generator<[number, number]> {
  let pos = 0;
  while (pos < buf.length) {
    const len = nextCut(buf, pos, buf.length, true);
    yield [pos, pos + len];
    pos += len;
  }
}

/**
 * Chunks a sequence of blocks (a large file read piece by piece), yielding each chunk's bytes.
 * Cuts are identical to {@link chunkBoundaries} over the concatenation. Yielded chunks are views
 * that stay valid after iteration continues.
 */
export function* chunkBlocks(blocks: Iterable<Uint8Array>): Generator<Uint8Array> {
  let buf = new Uint8Array(4 * MAX_CHUNK);
  let have = 0;
  for (const block of blocks) {
    let off = 0;
    while (off < block.length) {
      if (have === buf.length) {
        let pos = 0;
        while (true) {
          const cut = nextCut(buf, pos, have, false);
          if (cut < 0) break;
          yield buf.subarray(pos, pos + cut);
          pos += cut;
        }
        const nb = new Uint8Array(buf.length);
        nb.set(buf.subarray(pos, have));
        have -= pos;
        buf = nb;
      }
      const take = Math.min(block.length - off, buf.length - have);
      buf.set(block.subarray(off, off + take), have);
      have += take;
      off += take;
    }
  }
  let pos = 0;
  while (pos < have) {
    const cut = nextCut(buf, pos, have, true);
    yield buf.subarray(pos, pos + cut);
    pos += cut;
  }
}
