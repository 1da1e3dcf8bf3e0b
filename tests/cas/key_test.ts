import { assertEquals } from "../_assert.ts";
import { keyId, keyKind, objectKey } from "../../src/cas/key.ts";

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
