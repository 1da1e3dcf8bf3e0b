/** StoreView: refs and the secret key of a real store, read without the store's modules. */
import { assert, assertEquals } from "../_assert.ts";
import { tempDir } from "../_helpers.ts";
import { Store } from "../../src/cas/store.ts";
import { StoreView } from "../../src/cas/view.ts";

Deno.test("StoreView: null without a store; refs and key as the Store reads them; a damaged key is null", () => {
  using s = tempDir("hd-store-");
  assertEquals(StoreView.open(s.path), null, "no store yet");
  const store = Store.open(s.path, { create: true });
  const id = store.putObject(new TextEncoder().encode("hello"));
  store.setRef("envs/app", id);
  const view = StoreView.open(s.path);
  assert(view !== null);
  assertEquals(view.getRef("envs/app"), id);
  assertEquals(view.getRef("envs/none"), null);
  assertEquals(view.secretKey(), store.identity().key);
  Deno.writeTextFileSync(`${s.path}/KEY`, "not hex\n");
  assertEquals(StoreView.open(s.path)!.secretKey(), null);
  Deno.writeTextFileSync(`${s.path}/FORMAT`, "hd-store 99\n");
  assertEquals(StoreView.open(s.path), null, "another format");
});
