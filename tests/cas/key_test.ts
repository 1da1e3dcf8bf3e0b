import { assertEquals } from "../_assert.ts";
import { assertThrows } from "../_assert.ts";
import { keyId, keyKind, objectKey, toObjectKey } from "../../src/cas/key.ts";

const ID = "0123456789abcdef".repeat(4);

Deno.test("object keys: an object is its id, a manifest m + id (the encoding repair sources see)", () => {
  assertEquals(objectKey("objects", ID) as string, ID);
  assertEquals(objectKey("manifests", ID) as string, "m" + ID);
});

Deno.test("object keys round-trip, and the same id of both kinds gives two keys", () => {
  for (const kind of ["objects", "manifests"] as const) {
    for (const id of [ID, "f".repeat(64), "0".repeat(64)]) {
      const k = objectKey(kind, id);
      assertEquals([keyKind(k), keyId(k)], [kind, id]);
    }
  }
  assertEquals(new Set([objectKey("objects", ID), objectKey("manifests", ID)]).size, 2);
});

Deno.test("toObjectKey takes a key held as a string and refuses anything else", () => {
  assertEquals(toObjectKey(ID), objectKey("objects", ID));
  assertEquals(toObjectKey("m" + ID), objectKey("manifests", ID));
  for (const bad of ["", ID.slice(1), ID.toUpperCase(), "x" + ID, "mm" + ID, ID + "\n"]) {
    assertThrows(() => toObjectKey(bad), /Cannot use .* as an object key/);
  }
});
