import { createBLAKE3 } from "hash-wasm";
import { assertEquals } from "../_assert.ts";
import {
  blake3Hex,
  blake3Impl,
  fromHex,
  NAPI_BLAKE_VERSION,
  nativeAddonPath,
  toHex,
} from "../../src/cas/hash.ts";
import { hasCommand, testIf } from "../_helpers.ts";

Deno.test("ids agree with hash-wasm's BLAKE3 at every size (native or not)", async () => {
  const ref = await createBLAKE3();
  for (const n of [0, 1, 63, 64, 65, 1023, 1024, 1025, 4096, 16384, 65536, 200_001]) {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = (i * 31 + n) & 0xff;
    ref.init();
    ref.update(b);
    assertEquals(blake3Hex(b), ref.digest("hex"), `size ${n}`);
  }
});

Deno.test("ids agree with Debian's b3sum", async () => {
  if (!hasCommand("b3sum")) return console.log("SKIP b3sum comparison: b3sum not installed");
  const b = new TextEncoder().encode("hd\n".repeat(5000));
  const p = await Deno.makeTempFile();
  Deno.writeFileSync(p, b);
  const out = await new Deno.Command("b3sum", { args: ["--no-names", p], stdout: "piped" })
    .output();
  Deno.removeSync(p);
  assertEquals(blake3Hex(b), new TextDecoder().decode(out.stdout).trim());
});

Deno.test("hex round-trips and rejects bad input", () => {
  const b = new Uint8Array([0, 1, 0xab, 0xff]);
  assertEquals(toHex(b), "0001abff");
  assertEquals(fromHex("0001ABff"), b);
  let threw = false;
  try {
    fromHex("0g");
  } catch {
    threw = true;
  }
  assertEquals(threw, true);
});

Deno.test("toHex: every byte value, in order, any length (and fromHex reverses it)", () => {
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  const want = Array.from(all, (b) => b.toString(16).padStart(2, "0")).join("");
  assertEquals(toHex(all), want);
  assertEquals(toHex(new Uint8Array(0)), "");
  assertEquals(toHex(all.subarray(250)), "fafbfcfdfeff");
  assertEquals(toHex(fromHex(want)), want);
});

/** Why the native BLAKE3 module cannot be used here, or null when it loads and hashes. */
async function nativeSkip(): Promise<string | null> {
  if (Deno.env.get("HD_BLAKE3") === "wasm") return "HD_BLAKE3=wasm forces hash-wasm";
  try {
    const m = await import("@napi-rs/blake-hash");
    return typeof m.blake3 === "function" ? null : "@napi-rs/blake-hash has no blake3";
  } catch (e) {
    return `@napi-rs/blake-hash does not load: ${(e as Error).message.slice(0, 80)}`;
  }
}

// A module-load bug once made hash.ts fall back to wasm silently (7x slower ids): say so here.
testIf(await nativeSkip(), "ids use the native BLAKE3 whenever its module loads", () => {
  assertEquals(blake3Impl(), "native");
});

Deno.test("the deferred native addon is the version deno.json imports", () => {
  const cfg = JSON.parse(Deno.readTextFileSync(new URL("../../deno.json", import.meta.url)));
  assertEquals(cfg.imports["@napi-rs/blake-hash"], `npm:@napi-rs/blake-hash@${NAPI_BLAKE_VERSION}`);
});

Deno.test("nativeAddonPath follows DENO_DIR, then XDG_CACHE_HOME, then HOME", () => {
  if (Deno.build.os !== "linux" || Deno.build.arch !== "x86_64") return;
  const p = (env: Record<string, string>) => nativeAddonPath((k) => env[k]);
  const tail =
    `/npm/registry.npmjs.org/@napi-rs/blake-hash-linux-x64-gnu/${NAPI_BLAKE_VERSION}/blake.linux-x64-gnu.node`;
  assertEquals(p({ DENO_DIR: "/d", XDG_CACHE_HOME: "/x", HOME: "/h" }), `/d${tail}`);
  assertEquals(p({ XDG_CACHE_HOME: "/x", HOME: "/h" }), `/x/deno${tail}`);
  assertEquals(p({ HOME: "/h" }), `/h/.cache/deno${tail}`);
  assertEquals(p({}), null);
});

// A process that hashes nothing never loads the addon; the first hash loads it, right.
Deno.test("the native addon loads on the first hash, not at import", async () => {
  const src = new URL("../../src/cas/hash.ts", import.meta.url).href;
  const code = `import { blake3Deferred, blake3Hex } from "${src}";
const before = blake3Deferred();
const id = blake3Hex(new Uint8Array(0));
console.log(JSON.stringify({ before, after: blake3Deferred(), id }));`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--config", new URL("../../deno.json", import.meta.url).pathname, code],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const r = JSON.parse(new TextDecoder().decode(out.stdout));
  assertEquals(r.after, false);
  assertEquals(r.id, "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262");
  // deferred exactly when the addon is in Deno's npm cache here
  const path = nativeAddonPath();
  let cached = false;
  try {
    cached = path !== null && Deno.statSync(path).isFile;
  } catch { /* not cached */ }
  assertEquals(r.before, cached && Deno.env.get("HD_BLAKE3") !== "wasm");
});
