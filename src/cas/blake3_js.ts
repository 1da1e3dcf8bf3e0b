/**
 * BLAKE3 (32-byte digest, no key) in plain TypeScript: no module to load, no WebAssembly to
 * compile. hash.ts uses it for the small inputs hashed before its native module has loaded (a
 * no-change `hd up` hashes a few tree nodes and would otherwise wait ~10–50 ms for that module).
 * It is slow on large inputs (~100 MB/s); ids are identical to every other implementation
 * (tests/cas/hash_test.ts compares it with the reference vectors, hash-wasm and the native one).
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

/** The message word schedule of each of the 7 rounds (the permutation applied round after round). */
const SCHEDULE: number[][] = (() => {
  const perm = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8];
  const out: number[][] = [];
  let s = Array.from({ length: 16 }, (_, i) => i);
  for (let r = 0; r < 7; r++) {
    out.push(s);
    s = perm.map((p) => s[p]);
  }
  return out;
})();

const st = new Uint32Array(16);

function g(a: number, b: number, c: number, d: number, x: number, y: number): void {
  const s = st;
  s[a] = (s[a] + s[b] + x) | 0;
  let t = s[d] ^ s[a];
  s[d] = (t >>> 16) | (t << 16);
  s[c] = (s[c] + s[d]) | 0;
  t = s[b] ^ s[c];
  s[b] = (t >>> 12) | (t << 20);
  s[a] = (s[a] + s[b] + y) | 0;
  t = s[d] ^ s[a];
  s[d] = (t >>> 8) | (t << 24);
  s[c] = (s[c] + s[d]) | 0;
  t = s[b] ^ s[c];
  s[b] = (t >>> 7) | (t << 25);
}

/**
 * The compression function: `st` holds its 16 output words afterwards (the first 8 are the new
 * chaining value once xored with the last 8, which {@link cvOut} does).
 */
function compress(cv: Uint32Array, m: Uint32Array, counter: number, len: number, flags: number) {
  st.set(cv, 0);
  st[8] = IV[0], st[9] = IV[1], st[10] = IV[2], st[11] = IV[3];
  st[12] = counter >>> 0;
  st[13] = Math.floor(counter / 0x1_0000_0000) >>> 0;
  st[14] = len;
  st[15] = flags;
  for (let r = 0; r < 7; r++) {
    const s = SCHEDULE[r];
    g(0, 4, 8, 12, m[s[0]], m[s[1]]);
    g(1, 5, 9, 13, m[s[2]], m[s[3]]);
    g(2, 6, 10, 14, m[s[4]], m[s[5]]);
    g(3, 7, 11, 15, m[s[6]], m[s[7]]);
    g(0, 5, 10, 15, m[s[8]], m[s[9]]);
    g(1, 6, 11, 12, m[s[10]], m[s[11]]);
    g(2, 7, 8, 13, m[s[12]], m[s[13]]);
    g(3, 4, 9, 14, m[s[14]], m[s[15]]);
  }
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
