/**
 * ByteReader's strings and ids: the ASCII fast path and the TextDecoder path give the strings
 * ByteWriter wrote (at the fast path's length limit and past it), ids come back as the hex they
 * were written from, and malformed input still fails as a DecodeError.
 */
import { assertEquals, assertThrows } from "../_assert.ts";
import { ByteReader, ByteWriter, DecodeError } from "../../src/dag/encoding.ts";
import { toHex } from "../../src/cas/hash.ts";

Deno.test("ByteReader.str reads back ASCII, UTF-8 and long strings as written", () => {
  const cases = [
    "",
    "a",
    "index.js",
    "x".repeat(64), // the ASCII fast path's limit
    "y".repeat(65), // just past it: TextDecoder
    "z".repeat(300),
    "café.txt",
    "日本語",
    "emoji-😀",
    "a".repeat(63) + "é", // non-ASCII at the end of a short string
    "tab\tand\u007f", // 0x7f is still ASCII
  ];
  const w = new ByteWriter();
  for (const s of cases) w.str(s);
  const r = new ByteReader(w.finish());
  for (const s of cases) assertEquals(r.str(), s);
  assertEquals(r.done, true);
});

Deno.test("ByteReader.str refuses invalid UTF-8 and a truncated string", () => {
  for (const bytes of [[2, 0xc3, 0x28], [1, 0xff], [3, 0xe6, 0x97]]) {
    const e = assertThrows(() => new ByteReader(new Uint8Array(bytes)).str(), /Cannot decode/);
    assertEquals(e instanceof DecodeError, true, e.message);
  }
  const e = assertThrows(() => new ByteReader(new Uint8Array([5, 0x61, 0x62])).str(), /truncated/);
  assertEquals(e instanceof DecodeError, true);
});

Deno.test("ByteReader.id gives the lowercase hex of 32 bytes; truncated ids fail", () => {
  const ids = [new Uint8Array(32), new Uint8Array(32).fill(0xff)];
  for (let i = 0; i < 50; i++) ids.push(crypto.getRandomValues(new Uint8Array(32)));
  const w = new ByteWriter();
  for (const b of ids) w.id(toHex(b));
  const r = new ByteReader(w.finish());
  for (const b of ids) assertEquals(r.id(), toHex(b));
  assertThrows(() => new ByteReader(new Uint8Array(31)).id(), /truncated/);
});
