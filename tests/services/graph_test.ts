/**
 * The service graph over long chains: topological order, dependents and dependencies of a
 * 20,000-service `depends_on` chain without overflowing the stack, and cycles found in it.
 */
import { assert, assertEquals, assertThrows } from "../_assert.ts";
import { topoOrder, withDependencies, withDependents } from "../../src/services/graph.ts";

const N = 20_000;

function chain(cyclic = false): Record<string, string[]> {
  const g: Record<string, string[]> = {};
  for (let i = 0; i < N; i++) g[`s${i}`] = i + 1 < N ? [`s${i + 1}`] : cyclic ? ["s0"] : [];
  return g;
}

Deno.test("a 20,000-long depends_on chain is ordered, and walked both ways, in linear time", () => {
  const g = chain();
  const t0 = performance.now();
  const order = topoOrder(g);
  assertEquals(order.length, N);
  assertEquals(order[0], `s${N - 1}`);
  assertEquals(order[N - 1], "s0");
  assertEquals(withDependents(g, [`s${N - 1}`]).size, N);
  assertEquals(withDependencies(g, ["s0"]).size, N);
  assertEquals([...withDependencies(g, [`s${N - 2}`])], [`s${N - 2}`, `s${N - 1}`]);
  assert(performance.now() - t0 < 5000, "took too long");
});

Deno.test("a cycle closing a 20,000-long chain is reported, shortened, on one line", () => {
  const e = assertThrows(() => topoOrder(chain(true)), /dependency cycle s0 → s1 → .* → s0/);
  assert(e.message.length < 300, e.message);
  assert(e.message.includes(`(${N + 1 - 10} more)`), e.message);
});

Deno.test("order keeps declaration order where it can; unknown names are refused", () => {
  assertEquals(topoOrder({ web: ["api", "db"], api: ["db"], db: [], cron: [] }), [
    "db",
    "api",
    "web",
    "cron",
  ]);
  assertThrows(() => topoOrder({ a: ["b"], b: ["a"] }), /cycle a → b → a/);
  assertThrows(() => topoOrder({ a: ["nope"] }), /a depends on unknown service "nope"/);
  assertThrows(() => withDependencies({ a: [] }, ["b"]), /no such service/);
});
