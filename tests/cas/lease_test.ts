import { assert, assertEquals } from "../_assert.ts";

function assertMatch(s: string, re: RegExp): void {
  assert(re.test(s), `${JSON.stringify(s)} does not match ${re}`);
}
import { collectGarbage, judgeLeases } from "../../src/cas/gc.ts";
import { leaseVerdict, listLeases, type ProcProbe } from "../../src/cas/lease.ts";
import { Store } from "../../src/cas/store.ts";
import { verifyStore } from "../../src/cas/verify.ts";
import { dagReferences } from "../../src/dag/refs.ts";
import { ingestBytes } from "../../src/scan/ingest.ts";
import { putNode } from "../../src/dag/dag.ts";
import { hd, tempDir } from "../_helpers.ts";

const WRITER = new URL("./_lease_writer.ts", import.meta.url).pathname;

function makeTree(dir: string, files = 40): void {
  Deno.mkdirSync(`${dir}/sub`, { recursive: true });
  for (let i = 0; i < files; i++) {
    Deno.writeTextFileSync(
      `${dir}/${i % 2 ? "sub/" : ""}f${i}.txt`,
      `file ${i} ${"x".repeat(i * 50)}\n`,
    );
  }
}

/** Starts the writer; resolves once it has stored the tree (before it sets the ref). */
async function startWriter(store: string, src: string, fifo: string, mode: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", WRITER, store, src, fifo, mode],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (!out.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    out += value;
  }
  const m = out.match(/^written ([0-9a-f]{64})/);
  assert(m, `writer said: ${out}`);
  const rest = (async () => {
    let tail = "";
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      tail += value;
    }
    return tail;
  })();
  return { child, root: m[1], rest };
}

function mkfifo(path: string): void {
  const r = new Deno.Command("mkfifo", { args: [path] }).outputSync();
  assert(r.success, "mkfifo");
}

for (const mode of ["lease", "nolease"] as const) {
  Deno.test(
    `hd cas gc between a writer's objects and its ref: ${
      mode === "lease" ? "a lease keeps them" : "without a lease they are lost (the hole)"
    }`,
    async () => {
      using d = tempDir();
      const store = `${d.path}/store`;
      const src = `${d.path}/src`;
      makeTree(src);
      Store.open(store);
      mkfifo(`${d.path}/fifo`);
      const w = await startWriter(store, src, `${d.path}/fifo`, mode);
      const gc = await hd(["cas", "gc", "--json"], { store });
      assertEquals(gc.code, 0, gc.stderr);
      const report = JSON.parse(gc.stdout);
      Deno.writeTextFileSync(`${d.path}/fifo`, "go\n");
      assertEquals((await w.child.status).code, 0);
      assertMatch(await w.rest, /^ref /);
      const s = Store.open(store);
      assertEquals(s.getRef("trees/leased"), w.root);
      const v = verifyStore(s, dagReferences);
      if (mode === "lease") {
        assertEquals(report.removedObjects, 0, "nothing of the leased tree was swept");
        assertEquals(report.leases.length, 1);
        assertEquals(report.leases[0].why, "test writer");
        assert(report.keptByLeases > 40, `kept by leases: ${report.keptByLeases}`);
        assertEquals(v.missing, []);
        assertEquals(v.corrupt, []);
        const ver = await hd(["cas", "verify"], { store });
        assertEquals(ver.code, 0, ver.stdout + ver.stderr);
        assertEquals(listLeases(store), [], "the lease file is gone after release");
      } else {
        assert(report.removedObjects > 40, "gc swept the unreferenced tree");
        assert(v.missing.includes(w.root), "the ref names a tree that is gone");
      }
    },
  );
}

Deno.test("a lease of a writer killed with SIGKILL expires: gc reports it and sweeps", async () => {
  using d = tempDir();
  const store = `${d.path}/store`;
  const src = `${d.path}/src`;
  makeTree(src);
  Store.open(store);
  mkfifo(`${d.path}/fifo`);
  const w = await startWriter(store, src, `${d.path}/fifo`, "lease");
  assertEquals(listLeases(store).length, 1);
  assert(w.child.pid > 1);
  w.child.kill("SIGKILL"); // our own child
  await w.child.status;
  await w.rest;
  const gc = await hd(["cas", "gc", "--json"], { store });
  assertEquals(gc.code, 0, gc.stderr);
  const r = JSON.parse(gc.stdout);
  assertEquals(r.leases, []);
  assertEquals(r.expiredLeases.length, 1);
  assertMatch(r.expiredLeases[0].why, /test writer: process \d+ is gone/);
  assert(r.removedObjects > 40);
  assertEquals(listLeases(store), []);
});

Deno.test("a lease keeps a dedup hit: an old unreferenced object the writer now relies on", async () => {
  using d = tempDir();
  const s = Store.open(`${d.path}/s`);
  const f = ingestBytes(s, new TextEncoder().encode("old content"));
  // Unreferenced now. A writer (this process) takes a lease and finds it already stored.
  const lease = s.lease("dedup");
  const again = await s.withLock(
    "shared",
    () => ingestBytes(s, new TextEncoder().encode("old content")),
  );
  assertEquals(again.chunks, f.chunks);
  const r = await collectGarbage(s, { references: dagReferences });
  assertEquals(r.removedObjects, 0);
  assertEquals(r.keptByLeases, 1);
  const node = await s.withLock("shared", () => putNode(s, again));
  s.setRef("files/x", node);
  lease.release();
  const r2 = await collectGarbage(s, { references: dagReferences });
  assertEquals(r2.removedObjects, 0, "the ref keeps it now");
  assertEquals(verifyStore(s, dagReferences).missing, []);
});

Deno.test("a leased write outside withLock takes the shared lock until the lease is written", async () => {
  using d = tempDir();
  const s = Store.open(`${d.path}/s`);
  const other = Store.open(`${d.path}/s`);
  const lease = s.lease("no lock");
  const id = s.putObject(new TextEncoder().encode("written without withLock"));
  let gcDone = false;
  const gc = collectGarbage(other, { references: dagReferences }).then((r) => (gcDone = true, r));
  await new Promise((r) => setTimeout(r, 150));
  assertEquals(gcDone, false, "gc waits for the leased writer");
  s.flushLeases(); // written out: the lock is given up
  const r = await gc;
  assertEquals(r.removedObjects, 0);
  assertEquals(r.keptByLeases, 1);
  assertEquals(s.getObject(id).length, 24);
  lease.release();
});

const probe = (boot: string | null, procs: Record<number, number | "gone" | null>): ProcProbe => ({
  boot,
  start: (pid) => (pid in procs ? procs[pid] : "gone"),
});

Deno.test("leaseVerdict: only positive evidence of death expires a lease", () => {
  const table: [
    { pid: number; start: number | null; boot: string | null },
    ProcProbe,
    boolean,
    RegExp,
  ][] = [
    [{ pid: 100, start: 5, boot: "b1" }, probe("b1", { 100: 5 }), true, /held by process 100/],
    [{ pid: 100, start: 5, boot: "b1" }, probe("b1", {}), false, /process 100 is gone/],
    [{ pid: 100, start: 5, boot: "b1" }, probe("b1", { 100: 9 }), false, /another process/],
    [{ pid: 100, start: 5, boot: "b1" }, probe("b2", { 100: 5 }), false, /reboot/],
    [{ pid: 100, start: 5, boot: "b1" }, probe(null, { 100: 5 }), true, /held/],
    [{ pid: 100, start: null, boot: null }, probe("b1", { 100: 7 }), true, /held/],
    [{ pid: 100, start: 5, boot: "b1" }, probe("b1", { 100: null }), true, /held/],
    [{ pid: 0, start: 5, boot: "b1" }, probe("b1", { 0: 5 }), false, /invalid pid/],
    [{ pid: -1, start: 5, boot: "b1" }, probe("b1", {}), false, /invalid pid/],
  ];
  for (const [lease, p, live, why] of table) {
    const v = leaseVerdict(lease, p);
    assertEquals(v.live, live, JSON.stringify(lease));
    assertMatch(v.why, why);
  }
});

Deno.test("judgeLeases: an unreadable lease file is expired, a live one kept", () => {
  const rec = {
    version: 1,
    id: "a",
    why: "w",
    pid: 7,
    start: 1,
    boot: "b",
    created: 0,
    objects: [],
    manifests: [],
  };
  const r = judgeLeases(
    [{ path: "/x/a.json", lease: rec }, { path: "/x/b.json", lease: null }],
    probe("b", { 7: 1 }),
  );
  assertEquals(r.live.map((l) => l.id), ["a"]);
  assertEquals(r.expired, [{ path: "/x/b.json", why: "not a readable lease file" }]);
});
