/** `hd cas add` starting its ingest workers before the CLI loads (src/cli/add_early.ts). */
import { assert, assertEquals } from "../_assert.ts";
import { hd, tempDir } from "../_helpers.ts";
import { parseAddEarly, statCachePath } from "../../src/cli/add_early.ts";
import { blake3Hex } from "../../src/cas/hash.ts";
import { prestartDecision } from "../../src/scan/ingest_pool.ts";
import { Store } from "../../src/cas/store.ts";
import { ingestTree } from "../../src/scan/ingest.ts";

Deno.test("parseAddEarly: paths and the known options only", () => {
  const table: [string[], ReturnType<typeof parseAddEarly>][] = [
    [["/t"], { paths: ["/t"], noCache: false }],
    [["/a", "/b", "--json"], { paths: ["/a", "/b"], noCache: false }],
    [["--store", "/s", "/t", "--no-cache"], { paths: ["/t"], store: "/s", noCache: true }],
    [["/t", "--store=/s", "--ref", "r", "--debug"], { paths: ["/t"], store: "/s", noCache: false }],
    [["/t", "--ref=r"], { paths: ["/t"], noCache: false }],
    [[], null], // a usage error: the ordinary path says so
    [["/t", "--help"], null],
    [["/t", "-h"], null],
    [["/t", "--bogus"], null],
    [["/t", "--no-cache=1"], null],
    [["/t", "--store"], null],
    [["/t", "--store", ""], null],
    [["--", "/t"], null],
  ];
  for (const [rest, want] of table) assertEquals(parseAddEarly(rest), want, rest.join(" "));
});

Deno.test("statCachePath: the stat cache file named by the path's BLAKE3, as the store names it", () => {
  for (const abs of ["/", "/tmp/x", "/srv/проект/a b"]) {
    const id = blake3Hex(new TextEncoder().encode(abs)).slice(0, 24);
    assertEquals(statCachePath("/s", abs), `/s/cache/stat/${id}.json`);
  }
});

Deno.test("prestartDecision: workers ahead only for a directory read in full", () => {
  const table: [Parameters<typeof prestartDecision>[0], boolean][] = [
    [{ directory: true, noCache: false, statCache: false }, true], // a cold add
    [{ directory: true, noCache: true, statCache: true }, true], // --no-cache reads everything
    [{ directory: true, noCache: false, statCache: true }, false], // a re-scan: nothing to read
    [{ directory: false, noCache: true, statCache: false }, false], // a single file
  ];
  for (const [facts, want] of table) {
    assertEquals(prestartDecision(facts), want, JSON.stringify(facts));
  }
});

/** A tree of `n` files of `size` bytes of varied content. */
function makeTree(dir: string, n: number, size: number): void {
  for (let i = 0; i < n; i++) {
    const sub = `${dir}/d${i % 5}`;
    Deno.mkdirSync(sub, { recursive: true });
    const b = new Uint8Array(size);
    let x = i * 2654435761 + 1;
    for (let k = 0; k < size; k++) {
      (x = (x * 1103515245 + 12345) >>> 0, b[k] = (x >>> 24) % 40 + 48);
    }
    Deno.writeFileSync(`${sub}/f${i}.txt`, b);
  }
}

async function addTraced(store: string, tree: string, trace: string, extra: string[] = []) {
  try {
    Deno.removeSync(trace);
  } catch { /* none */ }
  const r = await hd(["cas", "add", tree, "--json", ...extra], { store, env: { HD_TRACE: trace } });
  assertEquals(r.code, 0, r.stderr);
  const lines = Deno.readTextFileSync(trace);
  return {
    root: JSON.parse(r.stdout).root as string,
    early: lines.includes("ingest workers started"),
    taken: lines.includes("workers taken from the early start"),
  };
}

Deno.test("hd cas add: a cold add of a big tree starts its workers early; same root as a serial ingest", async () => {
  using d = tempDir();
  const tree = `${d.path}/t`;
  makeTree(tree, 100, 128 << 10); // 12.5 MiB: above the parallel threshold
  const store = `${d.path}/store`;
  const cold = await addTraced(store, tree, `${d.path}/trace`);
  assert(cold.early, "a cold add of a directory starts its workers before the CLI loads");
  assert(cold.taken, "the parallel ingest uses them");
  const serial = ingestTree(Store.open(`${d.path}/serial`), tree);
  assertEquals(cold.root, serial.root);
  // the stat cache now answers a re-scan: no workers ahead
  const again = await addTraced(store, tree, `${d.path}/trace`);
  assert(!again.early, "a re-scan with a stat cache starts no workers ahead");
  assertEquals(again.root, serial.root);
  // --no-cache reads everything again
  const full = await addTraced(store, tree, `${d.path}/trace`, ["--no-cache"]);
  assert(full.early);
  assertEquals(full.root, serial.root);
});

Deno.test("hd cas add: workers started ahead for a small tree are dropped; the add completes", async () => {
  using d = tempDir();
  const tree = `${d.path}/t`;
  makeTree(tree, 3, 1000);
  const cold = await addTraced(`${d.path}/store`, tree, `${d.path}/trace`);
  assert(cold.early && !cold.taken, "started, then dropped: the serial ingest did it");
  assertEquals(cold.root, ingestTree(Store.open(`${d.path}/serial`), tree).root);
});
