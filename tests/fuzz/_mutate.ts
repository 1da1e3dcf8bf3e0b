/**
 * A small seeded mutator: bit flips, interesting bytes, truncation, deletion, duplication,
 * splices from other corpus inputs, repeated runs (deep nesting), and edits of length fields
 * (runs of ASCII digits, as in tar headers, pax records and TOML; varint bytes, as in nodes).
 * Deterministic for a given seed.
 * @module
 */

/** A seeded PRNG (mulberry32). */
export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  /** A 32-bit unsigned integer. */
  u32(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** An integer in [0, n). */
  below(n: number): number {
    return n <= 0 ? 0 : this.u32() % n;
  }
  /** One of `xs`. */
  pick<T>(xs: readonly T[]): T {
    return xs[this.below(xs.length)];
  }
}

const INTERESTING = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x20, 0x2f, 0x30, 0x37, 0x39, 0x0a, 0x22, 0x5b];
const NUMBERS = ["0", "1", "7", "99999999999", "77777777777", "18446744073709551616", "-1", ""];
const RUNS = ["[", "{a=", "a/", "../", "\xff", "\x80", "9", "\0"];

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) (out.set(p, o), o += p.length);
  return out;
}

const te = new TextEncoder();

/** One to four mutations of `input` (never longer than `maxLen`). */
export function mutate(
  rng: Rng,
  input: Uint8Array,
  corpus: readonly Uint8Array[],
  maxLen = 1 << 16,
): Uint8Array {
  let b: Uint8Array = input.slice();
  const n = 1 + rng.below(4);
  for (let k = 0; k < n; k++) {
    const at = rng.below(b.length + 1);
    switch (rng.below(10)) {
      case 0: // bit flip
        if (b.length) b[rng.below(b.length)] ^= 1 << rng.below(8);
        break;
      case 1: // interesting byte
        if (b.length) b[rng.below(b.length)] = rng.pick(INTERESTING);
        break;
      case 2: // truncate
        b = b.slice(0, at);
        break;
      case 3: { // delete a range
        const len = rng.below(Math.min(64, b.length - at) + 1);
        b = concat(b.subarray(0, at), b.subarray(at + len));
        break;
      }
      case 4: { // duplicate a range
        const len = rng.below(Math.min(512, b.length - at) + 1);
        b = concat(b.subarray(0, at + len), b.subarray(at, at + len), b.subarray(at + len));
        break;
      }
      case 5: { // splice a piece of another input
        const o = rng.pick(corpus);
        const from = rng.below(o.length + 1);
        const len = rng.below(Math.min(1024, o.length - from) + 1);
        b = concat(b.subarray(0, at), o.subarray(from, from + len), b.subarray(at));
        break;
      }
      case 6: { // a repeated run (deep nesting, deep paths)
        const run = te.encode(rng.pick(RUNS).repeat(1 + rng.below(3000)));
        b = concat(b.subarray(0, at), run, b.subarray(at));
        break;
      }
      case 7: { // length field edit: replace a run of ASCII digits
        const digits: number[] = [];
        for (let i = 0; i < b.length; i++) {
          if (b[i] >= 0x30 && b[i] <= 0x39 && (i === 0 || b[i - 1] < 0x30 || b[i - 1] > 0x39)) {
            digits.push(i);
          }
        }
        if (!digits.length) break;
        const s = rng.pick(digits);
        let e = s;
        while (e < b.length && b[e] >= 0x30 && b[e] <= 0x39) e++;
        b = concat(b.subarray(0, s), te.encode(rng.pick(NUMBERS)), b.subarray(e));
        break;
      }
      case 8: { // varint edit: a byte with the continuation bit, or a long varint
        if (!b.length) break;
        const i = rng.below(b.length);
        const v = rng.below(3);
        if (v === 0) b[i] |= 0x80;
        else if (v === 1) b[i] = 0x7f;
        else b = concat(b.subarray(0, i), new Uint8Array(9).fill(0xff), b.subarray(i));
        break;
      }
      default: { // overwrite with random bytes
        const len = Math.min(8, b.length - at);
        for (let i = 0; i < len; i++) b[at + i] = rng.below(256);
      }
    }
  }
  return b.length > maxLen ? b.slice(0, maxLen) : b;
}
