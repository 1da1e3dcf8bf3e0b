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
import { HdError } from "../cas/errors.ts";

/** Service name → names it depends on. */
export type DepGraph = Record<string, readonly string[]>;

/**
 * Names in an order where every service comes after its dependencies (declaration order is kept
 * where the graph allows). Throws on unknown dependencies and cycles.
 */
export function topoOrder(graph: DepGraph): string[] {
  const out: string[] = [];
  const state = new Map<string, "visiting" | "done">();
  const visit = (name: string, path: string[]) => {
    const s = state.get(name);
    if (s === "done") return;
    if (s === "visiting") {
      throw new HdError(
        `Cannot order services: dependency cycle ${[...path, name].join(" → ")}`,
        "remove one of the depends_on entries of the cycle in hd.toml",
      );
    }
    const deps = graph[name];
    if (deps === undefined) {
      throw new HdError(
        `Cannot order services: ${path.at(-1)} depends on unknown service "${name}"`,
        `declare [services.${name}] or fix depends_on`,
      );
    }
    state.set(name, "visiting");
    for (const d of deps) visit(d, [...path, name]);
    state.set(name, "done");
    out.push(name);
  };
  for (const name of Object.keys(graph)) visit(name, []);
  return out;
}

/** The given services plus everything that (transitively) depends on them. */
export function withDependents(graph: DepGraph, names: Iterable<string>): Set<string> {
  const set = new Set(names);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [n, deps] of Object.entries(graph)) {
      if (!set.has(n) && deps.some((d) => set.has(d))) (set.add(n), grew = true);
    }
  }
  return set;
}

/** The given services plus everything they (transitively) depend on. */
export function withDependencies(graph: DepGraph, names: Iterable<string>): Set<string> {
  const set = new Set<string>();
  const add = (n: string) => {
    if (set.has(n)) return;
    if (graph[n] === undefined) {
      throw new HdError(
        `Cannot select service "${n}": no such service`,
        `services in hd.toml: ${Object.keys(graph).join(", ") || "(none)"}`,
      );
    }
    set.add(n);
    for (const d of graph[n]) add(d);
  };
  for (const n of names) add(n);
  return set;
}
