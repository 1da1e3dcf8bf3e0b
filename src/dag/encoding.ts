/**
 * Canonical byte encoding primitives for DAG nodes: unsigned LEB128 varints, length-prefixed
 * byte strings, raw 32-byte ids. Writers emit fields in a fixed order, so equal nodes always
 * encode to equal bytes.
 *
 * @example
 * ```ts
 * import { ByteWriter, ByteReader } from "./encoding.ts";
 * const w = new ByteWriter(); w.varint(5); w.str("a");
 * const r = new ByteReader(w.finish()); r.varint(); r.str();
 * ```
 * @module
 */
import { fromHex, idHexAt } from "../cas/hash.ts";

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });
/** Strings up to this many bytes are tried as ASCII in JS first ({@link ByteReader.str}). */
const ASCII_FAST = 64;

/**
 * Bytes that are not a well-formed node: every decoding failure is one of these (never a
 * TypeError or RangeError), so callers can tell damaged input from a bug. `getNode` reports it as
 * a corrupt object.
 */
export class DecodeError extends Error {
  constructor(why: string) {
    super(`Cannot decode node: ${why}`);
    this.name = "DecodeError";
  }
}

/** The value of a hex digit's char code, or -1 (written without allocating: ids are hot). */
function nibble(c: number): number {
  return c >= 48 && c <= 57
    ? c - 48
    : c >= 97 && c <= 102
    ? c - 87
    : c >= 65 && c <= 70
    ? c - 55
    : -1;
}

/** Growable byte buffer with canonical field writers. */
export class ByteWriter {
  #buf = new Uint8Array(256);
  #len = 0;

  #ensure(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    let cap = this.#buf.length * 2;
    while (cap < this.#len + n) cap *= 2;
    const nb = new Uint8Array(cap);
    nb.set(this.#buf.subarray(0, this.#len));
    this.#buf = nb;
  }

  /** One byte. */
  u8(b: number): void {
    this.#ensure(1);
    this.#buf[this.#len++] = b & 0xff;
  }

  /** Unsigned varint (non-negative safe integer). */
  varint(n: number): void {
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`Cannot encode varint ${n}`);
    this.#ensure(10);
    while (n >= 0x80) {
      this.#buf[this.#len++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    this.#buf[this.#len++] = n;
  }

  /** Signed varint (zigzag). */
  svarint(n: number): void {
    this.varint(n >= 0 ? n * 2 : -n * 2 - 1);
  }

  /** Raw bytes, no length. */
  raw(b: Uint8Array): void {
    this.#ensure(b.length);
    this.#buf.set(b, this.#len);
    this.#len += b.length;
  }

  /** Length-prefixed bytes. */
  bytes(b: Uint8Array): void {
    this.varint(b.length);
    this.raw(b);
  }

  /** Length-prefixed UTF-8 string. */
  str(s: string): void {
    this.bytes(enc.encode(s));
  }

  /** A 32-byte id from its hex. */
  id(hex: string): void {
    if (hex.length !== 64) throw new Error(`Cannot encode id "${hex}": not 32 bytes`);
    this.#ensure(32);
    const buf = this.#buf;
    const at = this.#len;
    for (let i = 0; i < 32; i++) {
      const h = nibble(hex.charCodeAt(2 * i));
      const l = nibble(hex.charCodeAt(2 * i + 1));
      if ((h | l) < 0) fromHex(hex); // throws the usual "not hex" error
      buf[at + i] = (h << 4) | l;
    }
    this.#len += 32;
  }

  /** The bytes written so far (a copy). */
  finish(): Uint8Array {
    return this.#buf.slice(0, this.#len);
  }
}

/** Reader matching {@link ByteWriter}; every read throws on truncation. */
export class ByteReader {
  #b: Uint8Array;
  #p = 0;
  constructor(b: Uint8Array) {
    this.#b = b;
  }
  /** True when every byte was read. */
  get done(): boolean {
    return this.#p >= this.#b.length;
  }
  /** The next byte without consuming it (-1 at the end). */
  peek(): number {
    return this.#p < this.#b.length ? this.#b[this.#p] : -1;
  }
  #need(n: number): void {
    if (this.#p + n > this.#b.length) throw new DecodeError("truncated");
  }
  /** One byte. */
  u8(): number {
    this.#need(1);
    return this.#b[this.#p++];
  }
  /** Unsigned varint. */
  varint(): number {
    let n = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      const byte = this.u8();
      n += (byte & 0x7f) * mul;
      if ((byte & 0x80) === 0) {
        if (!Number.isSafeInteger(n)) throw new DecodeError("varint over 2^53");
        return n;
      }
      mul *= 0x80;
    }
    throw new DecodeError("varint too long");
  }
  /** Signed (zigzag) varint. */
  svarint(): number {
    const z = this.varint();
    return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
  }
  /** `n` raw bytes (a view). */
  raw(n: number): Uint8Array {
    this.#need(n);
    const v = this.#b.subarray(this.#p, this.#p + n);
    this.#p += n;
    return v;
  }
  /** Length-prefixed bytes (a view). */
  bytes(): Uint8Array {
    return this.raw(this.varint());
  }
  /**
   * Length-prefixed UTF-8 string. Short ASCII strings (nearly every file name) are built in JS
   * straight from the bytes: no view and no TextDecoder call each (a cold mount server decodes
   * thousands of names per `find`).
   */
  str(): string {
    const n = this.varint();
    this.#need(n);
    const b = this.#b;
    const p = this.#p;
    const v = b.subarray(p, p + n);
    this.#p = p + n;
    if (n <= ASCII_FAST) {
      let i = 0;
      while (i < n && b[p + i] < 0x80) i++;
      if (i === n) return String.fromCharCode.apply(null, v as unknown as number[]);
    }
    try {
      return dec.decode(v);
    } catch {
      throw new DecodeError("a string is not valid UTF-8");
    }
  }
  /** Bytes not read yet. */
  get remaining(): number {
    return this.#b.length - this.#p;
  }
  /**
   * A count of items that each take at least `min` bytes: refused when the bytes left cannot hold
   * them (so a hostile count never sizes an allocation).
   */
  count(min = 1): number {
    const n = this.varint();
    if (n * min > this.remaining) throw new DecodeError(`a count of ${n} items overruns the node`);
    return n;
  }
  /** A 32-byte id as hex. */
  id(): string {
    this.#need(32);
    const p = this.#p;
    this.#p = p + 32;
    return idHexAt(this.#b, p);
  }
}
