/**
 * Each fuzz target runs briefly and deterministically (a fixed seed, a fixed number of inputs,
 * the committed corpus first — which holds every crash found so far): every input either decodes
 * or throws the target's documented error, none hangs (2 s each) or grows the heap by more than
 * 256 MiB. `deno task fuzz` runs longer.
 */
import { assert } from "../_assert.ts";
import { describe, fuzz, loadCorpus } from "./_fuzz.ts";

for (const [target, iterations] of [["tar", 3000], ["toml", 1500], ["node", 5000]] as const) {
  Deno.test(`fuzz ${target}: ${iterations} seeded inputs decode or fail cleanly`, async () => {
    assert(loadCorpus(target).length >= 3, `tests/fuzz/corpus/${target} has its seeds`);
    const { runs, failures } = await fuzz({ target, seed: 13, iterations, seconds: 20 });
    assert(
      failures.length === 0,
      `${failures.length} failures; the first: ${
        describe(failures[0] ?? { kind: "hang", message: "", input: new Uint8Array() })
      }`,
    );
    assert(runs > 0);
  });
}

Deno.test("a node's counts never size an allocation: 2^49 inputs in 15 bytes is refused", async () => {
  const { decodeNode } = await import("../../src/dag/node.ts");
  const { DecodeError } = await import("../../src/dag/encoding.ts");
  // "hd", v1, buildstep; command ""; inputs count 2^49 (an 8-byte varint) and nothing after.
  const b = loadCorpus("node").find((c) => c.name === "crash-count-overrun")!.bytes;
  let err: unknown = null;
  try {
    decodeNode(b);
  } catch (e) {
    err = e;
  }
  assert(err instanceof DecodeError, `${err}`);
  assert(/a count of 562949953421312 items overruns the node/.test((err as Error).message));
});
