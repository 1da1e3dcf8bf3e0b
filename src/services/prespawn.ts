/**
 * Services started before the session loads: the detached supervisor of a no-change `hd up -d`
 * starts its first services (those that depend on none) right after its own start, instead of
 * after loading the session's ~140 modules, parsing hd.toml and compiling the environment
 * (~45 ms on a fast machine, more on a slow one). It does so only on proof that nothing changed:
 *
 * - the saved proof that binds hd.toml holds (src/env/quick_status.ts: every tracked file and
 *   directory, hd.toml and what its parse read, the parser's code and the variables it looked up
 *   are as when the proof was saved, and the proof's MAC, made with the store's secret key,
 *   verifies: a proof shipped in a cloned project does not). The proof carries the parsed spec
 *   as its subject, so the commands, directories and variables started are those hd.toml says.
 *   Tracked files edited in place since are rehashed against the proof's tree
 *   (src/env/proof_update.ts), which gives the tree and step hashes the session will find;
 * - every build step is cached here, with its outputs in place ({@link isStepCached});
 * - no `hd up` runs or left its state (`.hd/up.json` absent), and this process takes the
 *   project's `.hd/up.lock` first, which the session then takes over ({@link takeEarlyLock}):
 *   two instances of a service never start;
 * - the environment has no base image, no service has an image, secrets, profiles, replicas or
 *   `reload = "warm"` ({@link earlyServices}), and the supervisor was started without services,
 *   profiles or a cache named ({@link earlyArgs}).
 *
 * The session then compiles as usual and keeps each early process only when its compile found
 * the proof's tree and environment ids, no step ran, and the supervisor would start the service
 * with exactly the same command, directory and variables ({@link settleEarly}); any other early
 * process is stopped (SIGKILL to its group, which hd spawned and registered with the guardian)
 * and waited for before anything starts. Early processes are ordinary groups of
 * src/sandbox/process.ts: if the supervisor dies first, the guardian ends them.
 *
 * @example
 * ```ts
 * import { prespawn, takeEarly } from "./prespawn.ts";
 * await prespawn(["up", "--supervise"]); // in the detached supervisor, before the session loads
 * const proc = takeEarly("api", { command: "node api.js", cwd: "/p", env: {} }); // null: spawn
 * ```
 * @module
 */
import type { EnvSpec, ServiceSpec } from "../config/types.ts";
import { specFilePath } from "../config/find.ts";
import { defaultStoreRoot } from "../cas/root.ts";
import { StoreView } from "../cas/view.ts";
import { loadBoundStatus, type ProofCheck } from "../env/quick_status.ts";
import type { ProjectWatcher } from "../watch/watcher.ts";
import { isStepCached } from "../runtime/step_record.ts";
import { lazyImport } from "../sys/lazy.ts";
import { type GroupProcess, signalGroup, spawnGroup } from "../sandbox/process.ts";
import { trace } from "../sys/trace.ts";
import { acquireUpLock, upStatePath } from "./control.ts";

/** How a plain host service is started: its command, directory and whole environment. */
export interface SpawnLine {
  command: string;
  cwd: string;
  env: Record<string, string>;
}

/**
 * How the supervisor starts service `svc` of the project at `dir` on the host (pure):
 * `sh -c command` in its workdir, with the host's environment (`hostEnv`: the host's variables
 * and [environment].env) and its own `env` over it.
 */
export function spawnLine(
  dir: string,
  svc: Pick<ServiceSpec, "command" | "workdir" | "env">,
  hostEnv: Record<string, string>,
): SpawnLine {
  const cwd = svc.workdir && svc.workdir !== "." ? `${dir}/${svc.workdir}` : dir;
  return { command: svc.command, cwd, env: { ...hostEnv, ...svc.env } };
}

/** Whether two spawn lines start the same thing (the environments compared as sets). */
export function sameLine(a: SpawnLine, b: SpawnLine): boolean {
  if (a.command !== b.command || a.cwd !== b.cwd) return false;
  const ka = Object.keys(a.env);
  if (ka.length !== Object.keys(b.env).length) return false;
  return ka.every((k) => Object.hasOwn(b.env, k) && b.env[k] === a.env[k]);
}

/**
 * Whether a supervisor started with `args` (its arguments after the entry) may start services
 * early (pure): with no service, profile or cache named and `HD_PROFILES` (`profilesEnv`) unset.
 * Returns its `--file` (undefined: found from the cwd), or why not. Checked before anything is
 * read, so that a command line that rules it out costs nothing.
 */
export function earlyArgs(
  args: readonly string[],
  profilesEnv: string | undefined,
): { file: string | undefined } | { why: string } {
  const plainArgs = args.length === 2 ||
    (args.length === 4 && args[2] === "--file" && !args[3].startsWith("-"));
  if (args[0] !== "up" || args[1] !== "--supervise" || !plainArgs) {
    return { why: "services, profiles or a cache were named" };
  }
  if (profilesEnv) return { why: "HD_PROFILES is set" };
  return { file: args.length === 4 ? args[3] : undefined };
}

/**
 * Which services of `spec` may start before the session loads (pure): the services that depend
 * on none, or why none.
 */
export function earlyServices(spec: EnvSpec): { names: string[] } | { why: string } {
  if (spec.environment.base !== null) return { why: "the environment has a base image" };
  if (spec.build.steps.some((s) => s.image !== undefined)) return { why: "a step has an image" };
  const services = Object.values(spec.services);
  for (const s of services) {
    if (s.profiles?.length) return { why: `service ${s.name} has profiles` };
    if (s.image !== undefined || s.secrets?.length) {
      return { why: `service ${s.name} has an image or secrets` };
    }
    if (s.replicaOf !== undefined) return { why: `service ${s.name} is scaled` };
  }
  const names = services.filter((s) =>
    s.depends_on.length === 0 && s.reload !== "warm" && s.env.HD_SANDBOX_HELD_CMD === undefined
  ).map((s) => s.name);
  return names.length ? { names } : { why: "every service waits for another or is warm" };
}

/** Whether `v` has the shape of a parsed spec as far as the early start reads it. */
function specShape(v: unknown): v is EnvSpec {
  const s = v as EnvSpec;
  const strings = (r: unknown) =>
    typeof r === "object" && r !== null && Object.values(r).every((x) => typeof x === "string");
  return typeof s === "object" && s !== null && typeof s.dir === "string" &&
    typeof s.environment === "object" && s.environment !== null &&
    strings(s.environment.env) && typeof s.build === "object" && s.build !== null &&
    Array.isArray(s.build.steps) && typeof s.services === "object" && s.services !== null &&
    Object.values(s.services).every((x) =>
      typeof x === "object" && x !== null && typeof x.name === "string" &&
      typeof x.command === "string" && typeof x.workdir === "string" && strings(x.env) &&
      Array.isArray(x.depends_on)
    );
}

interface Early {
  dir: string;
  lock: Deno.FsFile | null;
  filesRoot: string;
  envId: string;
  procs: Map<string, { line: SpawnLine; proc: GroupProcess }>;
}

let early: Early | null = null;
/** The check of the proof {@link prespawn} made, for the session ({@link takeEarlyCheck}). */
let check: { dir: string; check: ProofCheck } | null = null;

type BoundCheck = NonNullable<Awaited<ReturnType<typeof loadBoundStatus>>>;
/** The least time between two of a spare's checks of the proof ({@link standBy}). */
const STAND_EVERY_MS = 1000;
/** What the last dry run of {@link prespawn} found a proof for. */
let dry: { file: string; spec: EnvSpec; secret: Uint8Array } | null = null;
/** A spare's watch of the project ({@link standBy}), and its check of the proof. */
let standWatch: ProjectWatcher | null = null;
let standing: { file: string; q: BoundCheck; events: number } | null = null;

/**
 * In a spare supervisor (src/services/spare.ts) while it waits: a dry run of {@link prespawn},
 * then, when a proof holds, a watch of the project's tracked files started before a check of the
 * proof that is kept standing (checked again once the files written settle, at most once a
 * second). When `hd up -d` comes, {@link prespawn} takes that check instead of stat'ing every path
 * again, if the watch has seen nothing since it began; the session checks
 * again once its own watcher runs (src/services/loop.ts), so nothing written in between goes
 * unseen even where this watch missed it.
 */
export async function standBy(args: readonly string[]): Promise<void> {
  await prespawn(args, { dryRun: true });
  const d = dry;
  if (d === null) return;
  let again = false;
  let checking = false;
  let last = -Infinity;
  const check = async (): Promise<void> => {
    if (checking) return void (again = true);
    checking = true;
    try {
      do {
        again = false;
        // at most one check a second (~40 ms on 10,000 files): files written on and on while
        // hd is down (a compiler's watch mode) cost a spare little
        const wait = last + STAND_EVERY_MS - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        last = performance.now();
        const events = w.relevantEvents;
        standing = null;
        const q = await loadBoundStatus(d.secret, d.file, { allWalked: true }).catch(() => null);
        if (q !== null && w.relevantEvents === events && standWatch === w) {
          standing = { file: d.file, q, events };
          trace(`early services: a standing check, ${q.changed.length} file(s) changed`);
        }
      } while (again && standWatch === w);
    } finally {
      checking = false;
    }
  };
  // (loaded here: a supervisor that is no spare starts its early services without them)
  const [{ ProjectWatcher }, { trackedFilter }] = await Promise.all([
    lazyImport<typeof import("../watch/watcher.ts")>(
      new URL("../watch/watcher.ts", import.meta.url),
    ),
    lazyImport<typeof import("../env/tracked.ts")>(new URL("../env/tracked.ts", import.meta.url)),
  ]);
  const w: ProjectWatcher = new ProjectWatcher(d.spec.dir, {
    debounceMs: 200,
    filter: trackedFilter(d.spec),
    onBatch: check,
    onRescan: () => (void check(), []), // events dropped: the standing check no longer holds
  });
  standWatch = w;
  w.start();
  await check();
  trace(`early services: standing by (${standing ? "a check holds" : "no check"})`);
}

/**
 * Ends a spare's watch ({@link standBy}); its check when it still holds (the watch saw nothing
 * since the check began), else null.
 */
function endStanding(): { file: string; q: BoundCheck } | null {
  const s = standing;
  const w = standWatch;
  standing = null;
  standWatch = null;
  if (w === null) return null;
  void w.close();
  return s !== null && w.relevantEvents === s.events ? s : null;
}

/** The spare's check `s` when it is of the hd.toml at `file`. */
function standingFor(s: { file: string; q: BoundCheck } | null, file: string): BoundCheck | null {
  if (s === null || s.file !== file) return null;
  trace("early services: the spare's standing check");
  return s.q;
}

/**
 * The check of the project's proof {@link prespawn} made in this process for the project at
 * `dir`, handed over once (the session's compile uses it instead of checking again), or null.
 */
export function takeEarlyCheck(dir: string): ProofCheck | null {
  const c = check?.dir === dir ? check.check : null;
  check = null;
  return c;
}

/**
 * In the detached supervisor (`args`: its arguments after the entry), before its session loads:
 * starts the services {@link earlyServices} allows when the proof of the module doc holds. Never
 * throws; without a proof (or on any doubt) it starts nothing and the session starts them. With
 * `dryRun`, it reads and checks all the same but stops before the project's lock: a spare
 * supervisor (src/services/spare.ts) does so while it waits, so that this code has run once
 * (compiled, its pages in) before it counts.
 */
export async function prespawn(
  args: readonly string[],
  opts: { dryRun?: boolean } = {},
): Promise<void> {
  // a spare's watch ends here, whatever this finds (the session watches on its own)
  const stood = opts.dryRun ? null : endStanding();
  const a = earlyArgs(args, Deno.env.get("HD_PROFILES"));
  if ("why" in a) return trace(`early services: none (${a.why})`);
  try {
    const file = specFilePath(a.file); // as the session resolves it
    const view = StoreView.open(defaultStoreRoot());
    const secret = view?.secretKey() ?? null;
    if (secret === null) return;
    const q = standingFor(stood, file) ??
      await loadBoundStatus(secret, file, { allWalked: !opts.dryRun });
    if (q === null) return trace("early services: no proof that holds");
    const spec: unknown = JSON.parse(q.subject)[0];
    if (!specShape(spec) || spec.dir !== q.facts.dir) return;
    if (opts.dryRun) dry = { file, spec, secret };
    // the session's compile takes this check instead of stat'ing every path again
    if (!opts.dryRun) check = { dir: spec.dir, check: q };
    const which = earlyServices(spec);
    if ("why" in which) return trace(`early services: none (${which.why})`);
    // files edited in place since: the tree and steps the session's compile will find
    const summary = q.changed.length === 0 && q.dirs.length === 0 ? q.summary : await lazyImport<
      typeof import("../env/proof_update.ts")
    >(new URL("../env/proof_update.ts", import.meta.url))
      .then((m) => m.updatedSummary(spec, q.summary, q));
    if (summary === null) return trace("early services: none (edited files not worked out)");
    const steps = spec.build.steps;
    if (
      summary.steps.length !== steps.length ||
      !steps.every((s, i) => isStepCached(spec, s, summary.steps[i].hash))
    ) return trace("early services: none (a step is not cached)");
    const dir = spec.dir;
    try {
      Deno.lstatSync(upStatePath(dir));
      return trace("early services: none (an up state is there)");
    } catch { /* none: no hd up runs */ }
    if (opts.dryRun) return;
    const lock = acquireUpLock(dir);
    if (!("file" in lock)) return trace("early services: none (another hd up holds the lock)");
    const hostEnv = { ...Deno.env.toObject(), ...spec.environment.env };
    const procs = new Map<string, { line: SpawnLine; proc: GroupProcess }>();
    early = { dir, lock: lock.file, filesRoot: summary.filesRoot, envId: summary.envId, procs };
    for (const name of which.names) {
      const line = spawnLine(dir, spec.services[name], hostEnv);
      procs.set(name, { line, proc: spawnGroup(line.command, { cwd: line.cwd, env: line.env }) });
      trace(`early services: spawned ${name}`);
    }
  } catch (e) {
    trace(`early services: stopped (${(e as Error).message})`);
  }
}

/**
 * The project lock {@link prespawn} took for the project at `dir`, handed over once (the session
 * holds it from then on), or null.
 */
export function takeEarlyLock(dir: string): Deno.FsFile | null {
  if (early?.dir !== dir || early.lock === null) return null;
  const l = early.lock;
  early.lock = null;
  return l;
}

/** The tree and environment ids of the proof the early services of `dir` started on, or null. */
export function earlyIds(dir: string): { filesRoot: string; envId: string } | null {
  return early?.dir === dir && early.procs.size > 0
    ? { filesRoot: early.filesRoot, envId: early.envId }
    : null;
}

async function stop(name: string): Promise<void> {
  const e = early?.procs.get(name);
  if (!e) return;
  early!.procs.delete(name);
  signalGroup(e.proc.pid, "SIGKILL");
  await Promise.all([e.proc.stdout.cancel(), e.proc.stderr.cancel()]).catch(() => {});
  await e.proc.status.catch(() => {});
  trace(`early services: stopped ${name}`);
}

/**
 * Keeps the early services of `dir` that `want` (the supervisor's line for a service, or null)
 * would start the same way; stops the others and waits until they are gone. Returns the names
 * kept.
 */
export async function settleEarly(
  dir: string,
  want: (name: string) => SpawnLine | null,
): Promise<Set<string>> {
  if (early?.dir !== dir) return new Set();
  const drop = [...early.procs].filter(([n, e]) => {
    const w = want(n);
    return w === null || !sameLine(w, e.line);
  }).map(([n]) => n);
  await Promise.all(drop.map(stop));
  return new Set(early.procs.keys());
}

/**
 * The early process of service `name`, handed over once, when it was started with `line`; null
 * when there is none (or it was started otherwise: then it is killed, which {@link settleEarly}
 * makes never happen).
 */
export function takeEarly(name: string, line: SpawnLine): GroupProcess | null {
  const e = early?.procs.get(name);
  if (!e) return null;
  early!.procs.delete(name);
  if (sameLine(e.line, line)) return e.proc;
  signalGroup(e.proc.pid, "SIGKILL");
  return null;
}

/** Stops every early process not handed over (the session started without them). */
export async function dropEarly(): Promise<void> {
  if (early) await Promise.all([...early.procs.keys()].map(stop));
}
