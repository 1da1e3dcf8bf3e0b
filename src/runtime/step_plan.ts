/**
 * The order of build steps, a pure plan (no runtime, no sandbox): which earlier steps each step
 * stacks on and waits for ({@link stepPlan}), and from it which steps may run side by side
 * ({@link stepDeps}). Apart from src/runtime/sandbox_steps.ts so that the host loop reads it
 * without loading the sandbox runtime.
 *
 * @example
 * ```ts
 * import { stepDeps } from "./step_plan.ts";
 * import type { EnvSpec } from "../config/types.ts";
 * declare const spec: EnvSpec;
 * stepDeps(spec); // for each step, the set of earlier steps it waits for
 * ```
 * @module
 */
import type { EnvSpec } from "../config/types.ts";
import { globBase } from "../sys/glob.ts";

/**
 * For each step, the earlier steps it depends on (transitively): those it stacks on (see
 * {@link stepPlan}) and, for a copy step, the steps of the root it reads. Steps that depend on
 * nothing run side by side.
 */
export function stepDeps(spec: Pick<EnvSpec, "build">): Set<number>[] {
  return stepPlan(spec).map((p) => p.waits);
}

/** The root a step runs on (or a copy reads): an image's layers and the layers of earlier steps. */
export interface StepRoot {
  /** null: the environment's base (and apt layer); else a stage's `image`. */
  image: string | null;
  /** Indices of the earlier steps whose layers stack on it, lowest first. */
  steps: number[];
}

/** What one step needs: the root it runs on, the roots its copies read, what it waits for. */
export interface StepPlan {
  /** The root it runs on (a copy step runs nothing: its root is unused). */
  root: StepRoot;
  /** For a copy step, the root each entry reads (the stage's root after its last earlier step). */
  copies: StepRoot[];
  /** Every earlier step that must be done first. */
  waits: Set<number>;
}

/**
 * Which layers each step runs on. The environment's steps (no `stage`) run on the base: a chained
 * step (no declared inputs) on every earlier one of them, a step with declared inputs on those
 * whose declared outputs one of its inputs names (or lies below, or above), transitively. A
 * stage's steps run on the stage's image and every earlier step of the same stage (chained, as a
 * Dockerfile stage's RUNs). A copy step's layer is only what it copied: in the environment it
 * stacks on nothing (later chained steps stack on it); in a stage it stays in the stage's chain and reads, per entry, the root of stage `from`
 * after that stage's last step before it.
 */
export function stepPlan(spec: Pick<EnvSpec, "build">): StepPlan[] {
  const base = globBase; // `src/a*.js` lies below `src` (not `src/a`)
  const overlaps = (a: string, b: string) =>
    a === "" || b === "" || a === b || a.startsWith(`${b}/`) || b.startsWith(`${a}/`);
  const steps = spec.build.steps;
  const out: StepPlan[] = [];
  const sorted = (d: Set<number>) => [...d].sort((a, b) => a - b);
  steps.forEach((s, i) => {
    const chain = s.stage ?? null;
    const below = new Set<number>();
    // a copy in the environment stacks on nothing; one in a stage keeps the stage's chain
    if (!s.copy || chain !== null) {
      for (let j = 0; j < i; j++) {
        const t = steps[j];
        if ((t.stage ?? null) !== chain) continue;
        const linked = chain !== null || t.copy !== undefined
          ? s.inputs === null || chain !== null
          : s.inputs === null || t.inputs === null ||
            s.inputs.some((inp) => t.outputs.some((o) => overlaps(base(inp), base(o))));
        if (linked) (below.add(j), out[j].root.steps.forEach((k) => below.add(k)));
      }
    }
    const copies: StepRoot[] = (s.copy ?? []).map((c) => {
      let last = -1;
      for (let j = 0; j < i; j++) if (steps[j].stage === c.from) last = j;
      const from = last < 0 ? [] : [...out[last].root.steps, last];
      const image = last < 0 ? null : out[last].root.image;
      return { image, steps: sorted(new Set(from)) };
    });
    const waits = new Set(below);
    for (const j of below) out[j].waits.forEach((k) => waits.add(k));
    for (const c of copies) {
      for (const j of c.steps) (waits.add(j), out[j].waits.forEach((k) => waits.add(k)));
    }
    const image = chain === null ? null : s.image ?? firstImage(steps, chain);
    out.push({ root: { image, steps: sorted(below) }, copies, waits });
  });
  return out;
}

function firstImage(steps: EnvSpec["build"]["steps"], stage: string): string | null {
  return steps.find((t) => t.stage === stage && t.image !== undefined)?.image ?? null;
}
