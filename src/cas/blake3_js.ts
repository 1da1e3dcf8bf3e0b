/**
 * BLAKE3 (32-byte digest, no key) in plain TypeScript: no module to load, no WebAssembly to
 * compile. hash.ts uses it for the small inputs hashed before its native module has loaded (a
 * no-change `hd up` hashes a few tree nodes and would otherwise wait ~10–50 ms for that module).
 * It is slow on large inputs (~100 MB/s); ids are identical to every other implementation
 * (tests/cas/hash_test.ts compares it with the reference vectors, hash-wasm and the native one).
 * Why not a library: @noble/hashes' blake3 (well kept, pure JS) was measured here, 3 runs: its
 * import through `npm:` costs 61–193 ms (this module: under 5 ms) and 264 small node-sized inputs
 * took 30–50 ms (this module: 9–25 ms) — the cost this module exists to avoid.
 *
 * @example
 * ```ts
 * import { blake3Js } from "./blake3_js.ts";
 * blake3Js(new Uint8Array(0)); // af1349b9… as 32 bytes
 * ```
 * @module
 */

const IV = new Uint32Array([
  0x6a09e667,
  0xbb67ae85,
  0x3c6ef372,
  0xa54ff53a,
  0x510e527f,
  0x9b05688c,
  0x1f83d9ab,
  0x5be0cd19,
]);
const CHUNK_START = 1;
const CHUNK_END = 2;
const PARENT = 4;
const ROOT = 8;
const CHUNK_LEN = 1024;
const BLOCK_LEN = 64;

const st = new Uint32Array(16);

/**
 * The compression function into {@link st} (16 words): the first 8 of the result are the new
 * chaining value. Straight-line code on locals (no calls, no array reads in the rounds): it runs
 * mostly before the JIT has compiled it, where every bytecode counts.
 */
function compress(
  cv: Uint32Array,
  m: Uint32Array,
  counter: number,
  len: number,
  flags: number,
): void {
  let s0 = cv[0], s1 = cv[1], s2 = cv[2], s3 = cv[3], s4 = cv[4], s5 = cv[5], s6 = cv[6];
  let s7 = cv[7], s8 = 0x6a09e667, s9 = 0xbb67ae85 | 0, s10 = 0x3c6ef372, s11 = 0xa54ff53a | 0;
  let s12 = counter | 0, s13 = Math.floor(counter / 0x1_0000_0000) | 0, s14 = len, s15 = flags;
  let m0 = m[0], m1 = m[1], m2 = m[2], m3 = m[3], m4 = m[4], m5 = m[5], m6 = m[6], m7 = m[7];
  let m8 = m[8], m9 = m[9], m10 = m[10], m11 = m[11], m12 = m[12], m13 = m[13], m14 = m[14];
  let m15 = m[15];
  for (let r = 0; r < 7; r++) {
    s0 = (s0 + s4 + m0) | 0;
    s12 ^= s0;
    s12 = (s12 >>> 16) | (s12 << 16);
    s8 = (s8 + s12) | 0;
    s4 ^= s8;
    s4 = (s4 >>> 12) | (s4 << 20);
    s0 = (s0 + s4 + m1) | 0;
    s12 ^= s0;
    s12 = (s12 >>> 8) | (s12 << 24);
    s8 = (s8 + s12) | 0;
    s4 ^= s8;
    s4 = (s4 >>> 7) | (s4 << 25);
    s1 = (s1 + s5 + m2) | 0;
    s13 ^= s1;
    s13 = (s13 >>> 16) | (s13 << 16);
    s9 = (s9 + s13) | 0;
    s5 ^= s9;
    s5 = (s5 >>> 12) | (s5 << 20);
    s1 = (s1 + s5 + m3) | 0;
    s13 ^= s1;
    s13 = (s13 >>> 8) | (s13 << 24);
    s9 = (s9 + s13) | 0;
    s5 ^= s9;
    s5 = (s5 >>> 7) | (s5 << 25);
    s2 = (s2 + s6 + m4) | 0;
    s14 ^= s2;
    s14 = (s14 >>> 16) | (s14 << 16);
    s10 = (s10 + s14) | 0;
    s6 ^= s10;
    s6 = (s6 >>> 12) | (s6 << 20);
    s2 = (s2 + s6 + m5) | 0;
    s14 ^= s2;
    s14 = (s14 >>> 8) | (s14 << 24);
    s10 = (s10 + s14) | 0;
    s6 ^= s10;
    s6 = (s6 >>> 7) | (s6 << 25);
    s3 = (s3 + s7 + m6) | 0;
    s15 ^= s3;
    s15 = (s15 >>> 16) | (s15 << 16);
    s11 = (s11 + s15) | 0;
    s7 ^= s11;
    s7 = (s7 >>> 12) | (s7 << 20);
    s3 = (s3 + s7 + m7) | 0;
    s15 ^= s3;
    s15 = (s15 >>> 8) | (s15 << 24);
    s11 = (s11 + s15) | 0;
    s7 ^= s11;
    s7 = (s7 >>> 7) | (s7 << 25);
    s0 = (s0 + s5 + m8) | 0;
    s15 ^= s0;
    s15 = (s15 >>> 16) | (s15 << 16);
    s10 = (s10 + s15) | 0;
    s5 ^= s10;
    s5 = (s5 >>> 12) | (s5 << 20);
    s0 = (s0 + s5 + m9) | 0;
    s15 ^= s0;
    s15 = (s15 >>> 8) | (s15 << 24);
    s10 = (s10 + s15) | 0;
    s5 ^= s10;
    s5 = (s5 >>> 7) | (s5 << 25);
    s1 = (s1 + s6 + m10) | 0;
    s12 ^= s1;
    s12 = (s12 >>> 16) | (s12 << 16);
    s11 = (s11 + s12) | 0;
    s6 ^= s11;
    s6 = (s6 >>> 12) | (s6 << 20);
    s1 = (s1 + s6 + m11) | 0;
    s12 ^= s1;
    s12 = (s12 >>> 8) | (s12 << 24);
    s11 = (s11 + s12) | 0;
    s6 ^= s11;
    s6 = (s6 >>> 7) | (s6 << 25);
    s2 = (s2 + s7 + m12) | 0;
    s13 ^= s2;
    s13 = (s13 >>> 16) | (s13 << 16);
    s8 = (s8 + s13) | 0;
    s7 ^= s8;
    s7 = (s7 >>> 12) | (s7 << 20);
    s2 = (s2 + s7 + m13) | 0;
    s13 ^= s2;
    s13 = (s13 >>> 8) | (s13 << 24);
    s8 = (s8 + s13) | 0;
    s7 ^= s8;
    s7 = (s7 >>> 7) | (s7 << 25);
    s3 = (s3 + s4 + m14) | 0;
    s14 ^= s3;
    s14 = (s14 >>> 16) | (s14 << 16);
    s9 = (s9 + s14) | 0;
    s4 ^= s9;
    s4 = (s4 >>> 12) | (s4 << 20);
    s3 = (s3 + s4 + m15) | 0;
    s14 ^= s3;
    s14 = (s14 >>> 8) | (s14 << 24);
    s9 = (s9 + s14) | 0;
    s4 ^= s9;
    s4 = (s4 >>> 7) | (s4 << 25);
    if (r === 6) break;
    const t0 = m2,
      t1 = m6,
      t2 = m3,
      t3 = m10,
      t4 = m7,
      t5 = m0,
      t6 = m4,
      t7 = m13,
      t8 = m1,
      t9 = m11,
      t10 = m12,
      t11 = m5,
      t12 = m9,
      t13 = m14,
      t14 = m15,
      t15 = m8;
    m0 = t0;
    m1 = t1;
    m2 = t2;
    m3 = t3;
    m4 = t4;
    m5 = t5;
    m6 = t6;
    m7 = t7;
    m8 = t8;
    m9 = t9;
    m10 = t10;
    m11 = t11;
    m12 = t12;
    m13 = t13;
    m14 = t14;
    m15 = t15;
  }
  st[0] = s0, st[1] = s1, st[2] = s2, st[3] = s3, st[4] = s4, st[5] = s5, st[6] = s6, st[7] = s7;
  st[8] = s8, st[9] = s9, st[10] = s10, st[11] = s11, st[12] = s12, st[13] = s13, st[14] = s14;
  st[15] = s15;
}

/** The chaining value of the last {@link compress} into `out` (8 words). */
function cvOut(out: Uint32Array): void {
  for (let i = 0; i < 8; i++) out[i] = st[i] ^ st[i + 8];
}

const block = new Uint32Array(16);
const blockBytes = new Uint8Array(block.buffer);
const LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Loads `len` (≤ 64) bytes of `b` at `off` into {@link block} as little-endian words, zero-padded. */
function loadBlock(b: Uint8Array, off: number, len: number): void {
  if (len < BLOCK_LEN) blockBytes.fill(0);
  if (LE) {
    blockBytes.set(b.subarray(off, off + len));
    return;
  }
  for (let w = 0; w < 16; w++) {
    let v = 0;
    for (let k = 3; k >= 0; k--) {
      const i = 4 * w + k;
      v = (v << 8) | (i < len ? b[off + i] : 0);
    }
    block[w] = v;
  }
}

/**
 * The last block of a node, not yet compressed (its flags get ROOT when it is the root): what
 * BLAKE3's reference calls an Output.
 */
interface Out {
  cv: Uint32Array;
  m: Uint32Array;
  counter: number;
  len: number;
  flags: number;
}

/** Hashes the chunk at `off` (up to 1024 bytes) up to its last block, which it returns. */
function chunkOut(b: Uint8Array, off: number, len: number, index: number): Out {
  const cv = IV.slice();
  const blocks = Math.max(1, Math.ceil(len / BLOCK_LEN));
  for (let i = 0; i < blocks - 1; i++) {
    loadBlock(b, off + i * BLOCK_LEN, BLOCK_LEN);
    compress(cv, block, index, BLOCK_LEN, i === 0 ? CHUNK_START : 0);
    cvOut(cv);
  }
  const last = len - (blocks - 1) * BLOCK_LEN;
  loadBlock(b, off + (blocks - 1) * BLOCK_LEN, last);
  return {
    cv,
    m: block.slice(),
    counter: index,
    len: last,
    flags: (blocks === 1 ? CHUNK_START : 0) | CHUNK_END,
  };
}

function outCv(o: Out): Uint32Array {
  compress(o.cv, o.m, o.counter, o.len, o.flags);
  const cv = new Uint32Array(8);
  cvOut(cv);
  return cv;
}

function parentOut(left: Uint32Array, right: Uint32Array): Out {
  const m = new Uint32Array(16);
  m.set(left, 0);
  m.set(right, 8);
  return { cv: IV.slice(), m, counter: 0, len: BLOCK_LEN, flags: PARENT };
}

/** BLAKE3 of `bytes` (the default 32-byte output, unkeyed). */
export function blake3Js(bytes: Uint8Array): Uint8Array {
  const chunks = Math.max(1, Math.ceil(bytes.length / CHUNK_LEN));
  const stack: Uint32Array[] = [];
  for (let i = 0; i < chunks - 1; i++) {
    let cv = outCv(chunkOut(bytes, i * CHUNK_LEN, CHUNK_LEN, i));
    // merge completed subtrees: as many as trailing zero bits of the chunk count so far
    for (let total = i + 1; (total & 1) === 0; total /= 2) cv = outCv(parentOut(stack.pop()!, cv));
    stack.push(cv);
  }
  const lastOff = (chunks - 1) * CHUNK_LEN;
  let out = chunkOut(bytes, lastOff, bytes.length - lastOff, chunks - 1);
  while (stack.length) out = parentOut(stack.pop()!, outCv(out));
  compress(out.cv, out.m, out.counter, out.len, out.flags | ROOT);
  const res = new Uint8Array(32);
  for (let i = 0; i < 8; i++) {
    const w = st[i] ^ st[i + 8];
    res[4 * i] = w & 0xff;
    res[4 * i + 1] = (w >>> 8) & 0xff;
    res[4 * i + 2] = (w >>> 16) & 0xff;
    res[4 * i + 3] = (w >>> 24) & 0xff;
  }
  return res;
}
