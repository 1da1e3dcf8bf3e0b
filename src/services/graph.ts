/**
 * The service dependency graph: topological order of `depends_on`, and the dependents of a set of
 * services (what must restart after them).
 *
 * @example
 * ```ts
 * import { topoOrder, withDependents } from "./graph.ts";
 * const order = topoOrder({ web: ["api"], api: [] }); // ["api", "web"]
 * withDependents({ web: ["api"], api: [] }, ["api"]); // Set { "api", "web" }
 * ```
 * @module
 */
import { HdError } from "../sys/errors.ts";

/** Service name → names it depends on. */
export type DepGraph = Record<string, readonly string[]>;

/**
 * Names in an order where every service comes after its dependencies (declaration order is kept
 * where the graph allows). Throws on unknown dependencies and cycles. Iterative (an explicit
 * stack), so a chain of any length is fine.
 */
export function topoOrder(graph: DepGraph): string[] {
  const out: string[] = [];
  const state = new Map<string, "visiting" | "done">();
  for (const root of Object.keys(graph)) {
    if (state.get(root) === "done") continue;
    // `path[i]` is on the current path, `next[i]` the index of its next dependency to visit.
    const path = [root];
    const next = [0];
    state.set(root, "visiting");
    while (path.length) {
      const top = path.length - 1;
      const deps = graph[path[top]];
      if (next[top] === deps.length) {
        state.set(path[top], "done");
        out.push(path[top]);
        path.pop();
        next.pop();
        continue;
      }
      const d = deps[next[top]++];
      const s = state.get(d);
      if (s === "done") continue;
      if (s === "visiting") {
        const cycle = [...path.slice(path.indexOf(d)), d];
        const shown = cycle.length <= 12
          ? cycle
          : [...cycle.slice(0, 5), `… (${cycle.length - 10} more) …`, ...cycle.slice(-5)];
        throw new HdError(
          `Cannot order services: dependency cycle ${shown.join(" → ")}`,
          "remove one of the depends_on entries of the cycle in hd.toml",
        );
      }
      if (graph[d] === undefined) {
        throw new HdError(
          `Cannot order services: ${path[top]} depends on unknown service "${d}"`,
          `declare [services.${d}] or fix depends_on`,
        );
      }
      state.set(d, "visiting");
      path.push(d);
      next.push(0);
    }
  }
  return out;
}

/** The given services plus everything that (transitively) depends on them. */
export function withDependents(graph: DepGraph, names: Iterable<string>): Set<string> {
  const dependents = new Map<string, string[]>();
  for (const [n, deps] of Object.entries(graph)) {
    for (const d of deps) {
      const l = dependents.get(d);
      if (l) l.push(n);
      else dependents.set(d, [n]);
    }
  }
  const set = new Set(names);
  const todo = [...set];
  while (todo.length) {
    for (const n of dependents.get(todo.pop()!) ?? []) {
      if (!set.has(n)) (set.add(n), todo.push(n));
    }
  }
  return set;
}

/** The given services plus everything they (transitively) depend on. */
export function withDependencies(graph: DepGraph, names: Iterable<string>): Set<string> {
  const set = new Set<string>();
  const todo = [...names].reverse();
  while (todo.length) {
    const n = todo.pop()!;
    if (set.has(n)) continue;
    if (graph[n] === undefined) {
      throw new HdError(
        `Cannot select service "${n}": no such service`,
        `services in hd.toml: ${Object.keys(graph).join(", ") || "(none)"}`,
      );
    }
    set.add(n);
    for (let i = graph[n].length - 1; i >= 0; i--) todo.push(graph[n][i]);
  }
  return set;
}

/**
 * What a restart of `names` restarts, in start order: `names` and their dependents, leaving out
 * dependents that are not `wanted` (not running: a restart does not start them).
 *
 * @example
 * ```ts
 * import { restartSet } from "./graph.ts";
 * const g = { db: [], api: ["db"], web: ["api"] };
 * restartSet(g, ["db", "api", "web"], ["api"], new Set(["db", "api"])); // ["api"]
 * ```
 */
export function restartSet(
  graph: DepGraph,
  order: readonly string[],
  names: readonly string[],
  wanted: ReadonlySet<string>,
): string[] {
  const set = withDependents(graph, names);
  return order.filter((n) => set.has(n) && (names.includes(n) || wanted.has(n)));
}
