/**
 * Test helper process: a writer that stores a tree, then pauses (reading a fifo) before it sets
 * the ref that reaches the tree — the window in which a concurrent `hd cas gc` used to delete it.
 *
 * Usage: deno run -A _lease_writer.ts STORE SRC FIFO lease|nolease
 * Prints `written <root>` once the tree is stored, `ref <root>` once the ref is set.
 * @module
 */
import { Store } from "../../src/cas/store.ts";
import { ingestTree } from "../../src/scan/ingest.ts";

const [storeDir, src, fifo, mode] = Deno.args;
const store = Store.open(storeDir);
const lease = mode === "lease" ? store.lease("test writer") : null;
const root = await store.withLock("shared", () => ingestTree(store, src).root);
console.log(`written ${root}`);
// Blocks until the test writes a line into the fifo.
Deno.readTextFileSync(fifo);
await store.withLock("shared", () => store.setRef("trees/leased", root));
lease?.release();
console.log(`ref ${root}`);
