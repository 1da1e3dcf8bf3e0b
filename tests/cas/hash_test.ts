import { createBLAKE3 } from "hash-wasm";
import { assert, assertEquals } from "../_assert.ts";
import {
  blake3Hex,
  blake3Impl,
  fromHex,
  idHexAt,
  loadNativeBlake3,
  toHex,
} from "../../src/cas/hash.ts";
import { blake3Js } from "../../src/cas/blake3_js.ts";
import { blake3Wasm, MODULE_B64 } from "../../src/cas/blake3_wasm.ts";
import { hasCommand, REPO, testIf } from "../_helpers.ts";

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

const EMPTY = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";

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
testIf(await nativeSkip(), "ids use the native BLAKE3 whenever its module loads", async () => {
  assertEquals(await loadNativeBlake3(), true);
  assertEquals(blake3Impl(), "native");
});

/** The lengths of BLAKE3's official test vectors (input byte i is i % 251), and a few more. */
const VECTOR_SIZES = [
  0,
  1,
  63,
  64,
  65,
  127,
  128,
  129,
  1023,
  1024,
  1025,
  2048,
  2049,
  3072,
  3073,
  4096,
  4097,
  5120,
  5121,
  6144,
  6145,
  7168,
  7169,
  8192,
  8193,
  16384,
  31744,
  102400,
  1 << 20,
  3 * 1024 * 1024 + 7,
];

function vectorInput(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = i % 251;
  return b;
}

Deno.test("the plain-TypeScript BLAKE3 gives hash-wasm's ids (official vector sizes, odd sizes)", async () => {
  const ref = await createBLAKE3();
  assertEquals(toHex(blake3Js(new Uint8Array(0))), EMPTY);
  // the official vectors' first bytes (BLAKE3 test_vectors.json, unkeyed hash, 1 and 1024 bytes)
  assertEquals(toHex(blake3Js(vectorInput(1))).slice(0, 16), "2d3adedff11b61f1");
  assertEquals(toHex(blake3Js(vectorInput(1024))).slice(0, 16), "42214739f095a406");
  const sizes = [...VECTOR_SIZES];
  for (let i = 0; i < 200; i++) sizes.push((i * 7919) % 20_000);
  for (const n of sizes) {
    const b = vectorInput(n);
    ref.init();
    ref.update(b);
    assertEquals(toHex(blake3Js(b)), ref.digest("hex"), `size ${n}`);
  }
});

testIf(
  await nativeSkip(),
  "the plain-TypeScript BLAKE3 gives the native module's ids",
  async () => {
    const m = await import("@napi-rs/blake-hash");
    const f = m.blake3 as unknown as (b: Uint8Array) => Uint8Array;
    for (const n of VECTOR_SIZES) {
      const b = vectorInput(n);
      assertEquals(toHex(blake3Js(b)), toHex(f(b)), `size ${n}`);
    }
    const r = new Uint8Array(70_000);
    crypto.getRandomValues(r.subarray(0, 65536));
    for (let n = 0; n < r.length; n += 997) {
      assertEquals(toHex(blake3Js(r.subarray(0, n))), toHex(f(r.subarray(0, n))), `random ${n}`);
    }
  },
);

Deno.test("ids are the same before and after the native module loads", async () => {
  const inputs = [0, 5, 200, 4095, 4096, 70_000].map(vectorInput);
  const before = inputs.map(blake3Hex);
  await loadNativeBlake3();
  assertEquals(inputs.map(blake3Hex), before);
});

testIf(
  await nativeSkip(),
  "with autoLoadNativeBlake3(false), hashing much leaves the native module unloaded until asked",
  async () => {
    // a fresh process: this one may have loaded the module already
    const hash = new URL("../../src/cas/hash.ts", import.meta.url).href;
    const script = `
      import {
        autoLoadNativeBlake3, blake3Hex, blake3Impl, loadNativeBlake3, nativeBlake3Loading,
      } from "${hash}";
      autoLoadNativeBlake3(false);
      const big = new Uint8Array(200_000).map((_, i) => i % 251);
      const id = blake3Hex(big);
      await new Promise((r) => setTimeout(r, 50));
      const before = blake3Impl();
      const idle = nativeBlake3Loading();
      const p = loadNativeBlake3();
      const during = nativeBlake3Loading();
      await p;
      console.log(JSON.stringify({
        before, after: blake3Impl(), same: blake3Hex(big) === id,
        loading: [idle, during, nativeBlake3Loading()],
      }));`;
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--ext=ts", script],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout).trim();
    assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
    assertEquals(JSON.parse(text), {
      before: "wasm", // 200 KB is past WASM_AFTER: the embedded WebAssembly BLAKE3
      after: "native",
      same: true,
      loading: [false, true, false], // not started, under way, done
    });
  },
);

Deno.test("the embedded WebAssembly BLAKE3 gives blake3_js.ts's digests at every size", () => {
  const f = blake3Wasm();
  assert(f, "WebAssembly is available here");
  for (const n of [0, 1, 63, 64, 65, 1023, 1024, 1025, 16383, 16384, 16385, 50_000, 200_000]) {
    const b = new Uint8Array(n).map((_, i) => (i * 31 + n) % 251);
    assertEquals(toHex(f(b)), toHex(blake3Js(b)), `${n} bytes`);
    assertEquals(toHex(f(b.subarray(1))), toHex(blake3Js(b.subarray(1))), `a view, ${n} bytes`);
  }
});

Deno.test("the main thread hashes with blake3_js.ts first, then with the WebAssembly BLAKE3", async () => {
  // a fresh process: this one may have hashed much already
  const hash = new URL("../../src/cas/hash.ts", import.meta.url).href;
  const script = `
    import { autoLoadNativeBlake3, blake3Hex, blake3Impl } from "${hash}";
    autoLoadNativeBlake3(false);
    const small = new Uint8Array(600).map((_, i) => i % 7);
    const ids = [blake3Hex(small)];
    const impls = [blake3Impl()];
    for (let i = 0; i < 40; i++) ids.push(blake3Hex(small));
    impls.push(blake3Impl());
    console.log(JSON.stringify({ impls, same: ids.every((x) => x === ids[0]), id: ids[0] }));`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", script],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
  const r = JSON.parse(new TextDecoder().decode(out.stdout));
  const small = new Uint8Array(600).map((_, i) => i % 7);
  assertEquals(r, { impls: ["js", "wasm"], same: true, id: toHex(blake3Js(small)) });
});

Deno.test("the embedded WebAssembly BLAKE3 is the module of the hash-wasm deno.json pins", async () => {
  const pin = JSON.parse(Deno.readTextFileSync(`${REPO}/deno.json`)).imports["hash-wasm"];
  const version = /^npm:hash-wasm@(\d+\.\d+\.\d+)$/.exec(pin)?.[1];
  assert(version, `deno.json pins hash-wasm as ${pin}`);
  const info = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json"],
    stdout: "piped",
  })
    .output();
  const cache = JSON.parse(new TextDecoder().decode(info.stdout)).npmCache as string;
  const dist = `${cache}/registry.npmjs.org/hash-wasm/${version}/dist/blake3.umd.min.js`;
  // this file imports hash-wasm: the package is in the cache
  const js = Deno.readTextFileSync(dist);
  const data = /data:"([A-Za-z0-9+/=]+)"/.exec(js)?.[1];
  assertEquals(data, MODULE_B64, `src/cas/blake3_wasm.ts differs from ${dist}: copy its data`);
});

Deno.test("idHexAt: the 32 bytes at any offset, as toHex gives them", () => {
  const b = new Uint8Array(100);
  for (let i = 0; i < b.length; i++) b[i] = (i * 97 + 13) & 255;
  b.fill(255, 40, 72);
  for (const at of [0, 1, 31, 40, 68]) assertEquals(idHexAt(b, at), toHex(b.subarray(at, at + 32)));
});
