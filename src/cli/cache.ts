/**
 * `hd cache push | ls | pull`: the remote build cache (src/remote, docs/remote.md) by hand. The
 * remote is `--cache REF`, else `HD_REMOTE_CACHE`, else hd.toml's `[remote] cache`.
 *
 * - `hd cache push` uploads the recorded results (`builds/<hash>`) of the current environment's
 *   steps: only packs the remote lacks; a re-run after a cut pushes what is missing.
 * - `hd cache ls` lists the step results the remote holds, marking this environment's steps
 *   (with `--volumes`, its volumes' snapshots too).
 * - `hd cache pull` downloads the results of this environment's steps not recorded here (only the
 *   objects the store lacks) and records them as if they had run.
 *
 * - `--volumes` (push, pull): also the environment's named volumes — push uploads the snapshots
 *   `hd down` left (refs `volumes/<env>/<name>`), pull restores those this machine lacks (the
 *   next `hd up` checks them out); src/runtime/remote_volumes.ts.
 *
 * Unlike `hd up` (which runs a step when the remote fails), these report a failing remote as an
 * error and exit 1.
 *
 * @example
 * ```sh
 * hd cache push --cache registry.example.com/team/hd-cache
 * HD_REMOTE_CACHE=s3://bucket/hd hd cache ls --json
 * ```
 * @module
 */
import { HdError } from "../sys/errors.ts";
import type { Store } from "../cas/store.ts";
import { loadProjectSpec } from "../config/parse.ts";
import type { EnvSpec } from "../config/types.ts";
import { compileEnv } from "../env/compile.ts";
import { stepCacheRef } from "../env/report.ts";
import { loadImage } from "../oci/image.ts";
import { type FetchStats, type PushStats, restoreStep } from "../remote/cache.ts";
import { HostRuntime } from "../runtime/host.ts";
import { specRemote } from "../runtime/remote_steps.ts";
import { pullVolumes, pushVolumes, specVolumeNames } from "../runtime/remote_volumes.ts";
import { volumeRef } from "../runtime/volumes.ts";
import { volumeTag } from "../remote/wire.ts";
import { pulledImageIds, recordLayer } from "../runtime/step_cache.ts";
import type { Command, Context, OptionSpec } from "./command.ts";
import { formatBytes } from "./output.ts";

const OPTIONS: Record<string, OptionSpec> = {
  cache: {
    type: "string",
    help: "the remote: REGISTRY/REPO or s3://BUCKET/PREFIX (default HD_REMOTE_CACHE, hd.toml)",
  },
  file: { type: "string", help: "the hd.toml to use (default: found from the cwd)" },
};

const WITH_VOLUMES: Record<string, OptionSpec> = {
  ...OPTIONS,
  volumes: {
    type: "boolean",
    help: "also the environment's named volumes (the snapshots `hd down` keeps)",
  },
};

/** The project, its remote, and its steps (hash, command, recorded result). */
async function setup(ctx: Context) {
  const spec = loadProjectSpec(typeof ctx.values.file === "string" ? ctx.values.file : undefined);
  const store = ctx.store();
  const rc = specRemote(store, spec, ctx.values.cache as string | undefined);
  if (!rc) {
    throw new HdError(
      "Cannot use the remote cache: none is configured",
      'add [remote] cache = "REGISTRY/REPO" to hd.toml, set HD_REMOTE_CACHE, or pass --cache REF',
    );
  }
  const steps = await envSteps(store, spec);
  return { spec, store, rc, steps };
}

/** The steps of the current environment (hashes as `hd up` computes them). */
async function envSteps(store: Store, spec: EnvSpec) {
  const base = spec.environment.base;
  const image = base === null ? null : loadImage(store, base);
  if (base !== null && !image) {
    throw new HdError(
      `Cannot tell the steps of ${spec.environment.name}: its base ${base} is not pulled`,
      `run \`hd pull ${base}\` (or \`hd up\`) first`,
    );
  }
  const c = await compileEnv(store, spec, { record: false, ...pulledImageIds(store, spec) });
  return c.steps.map((s) => ({
    index: s.index,
    run: s.spec.run,
    hash: s.id,
    result: store.getRef(stepCacheRef(s.id)),
  }));
}

/** `hd cache push`. */
export const cachePush: Command = {
  name: "cache push",
  summary: "upload the current environment's step results to the remote cache",
  usage: "hd cache push [--cache REF] [--volumes]",
  options: WITH_VOLUMES,
  async run(ctx) {
    const { spec, store, rc, steps } = await setup(ctx);
    const pushed: (
      & { index: number; hash: string; run: string; pushed: boolean; why?: string }
      & Partial<PushStats>
    )[] = [];
    for (const s of steps) {
      if (!s.result) {
        pushed.push({ index: s.index, hash: s.hash, run: s.run, pushed: false, why: "not built" });
        continue;
      }
      const st = await rc.push(s.hash, s.result);
      pushed.push({ index: s.index, hash: s.hash, run: s.run, pushed: true, ...st });
      ctx.out.note(
        `step ${s.index + 1} (${s.hash.slice(0, 12)}): ${st.uploaded} pack(s) uploaded, ` +
          `${st.skipped} already there, ${formatBytes(st.bytes + st.metaBytes)}`,
      );
    }
    const volumes = ctx.values.volumes === true
      ? await pushVolumes(store, rc, spec.environment.name)
      : undefined;
    for (const v of volumes ?? []) {
      ctx.out.note(
        `volume ${v.name} (${v.tree.slice(0, 12)}) as ${v.tag}: ${v.uploaded} pack(s) uploaded, ` +
          `${v.skipped} already there, ${formatBytes(v.bytes + v.metaBytes)}`,
      );
    }
    const bytes = [...pushed, ...volumes ?? []]
      .reduce((n, p) => n + (p.bytes ?? 0) + (p.metaBytes ?? 0), 0);
    ctx.out.result({ remote: rc.describe, steps: pushed, volumes, bytes }, () => {
      const n = pushed.filter((p) => p.pushed).length;
      const unbuilt = pushed.length - n;
      return `pushed ${n} step result(s)` +
        (volumes ? ` and ${volumes.length} volume(s)` : "") +
        ` to ${rc.describe} (${formatBytes(bytes)})` +
        (unbuilt ? `; ${unbuilt} step(s) not built here (run \`hd up\`)` : "") +
        (volumes && !volumes.length ? "; no volume snapshot here (`hd down` makes them)" : "");
    });
    return 0;
  },
};

/** `hd cache ls`. */
export const cacheLs: Command = {
  name: "cache ls",
  summary: "list the step results the remote cache holds (this environment's marked)",
  usage: "hd cache ls [--cache REF] [--volumes]",
  options: WITH_VOLUMES,
  async run(ctx) {
    const { spec, store, rc, steps } = await setup(ctx);
    const held = new Set(await rc.list());
    const mine = steps.map((s) => ({ ...s, remote: held.has(s.hash) }));
    const others = [...held].filter((h) => !steps.some((s) => s.hash === h)).sort();
    let volumes: { name: string; tag: string; remote: boolean; local: string | null }[] | undefined;
    let otherVolumes = 0;
    if (ctx.values.volumes === true) {
      const tags = new Set(await rc.listVolumes());
      const env = spec.environment.name;
      volumes = specVolumeNames(spec).map((name) => ({
        name,
        tag: volumeTag(env, name),
        remote: tags.has(volumeTag(env, name)),
        local: store.getRef(volumeRef(env, name)),
      }));
      otherVolumes = [...tags].filter((t) => !volumes!.some((v) => v.tag === t)).length;
    }
    ctx.out.result(
      { remote: rc.describe, steps: mine, other: others, volumes, otherVolumes },
      () =>
        [
          `${rc.describe}: ${held.size} step result(s)`,
          ...mine.map((s) =>
            `  step ${s.index + 1} ${s.hash.slice(0, 12)} ${s.remote ? "remote" : "-     "} ${
              s.result ? "local" : "-    "
            }  ${s.run}`
          ),
          ...(others.length
            ? [`  ${others.length} other result(s) (other versions/projects)`]
            : []),
          ...(volumes ?? []).map((v) =>
            `  volume ${v.name} ${v.remote ? "remote" : "-     "} ${
              v.local ? "local" : "-    "
            }  ${v.tag}`
          ),
          ...(otherVolumes ? [`  ${otherVolumes} other volume(s) (other environments)`] : []),
        ].join("\n"),
    );
    return 0;
  },
};

/** `hd cache pull`. */
export const cachePull: Command = {
  name: "cache pull",
  summary: "download the current environment's step results from the remote cache",
  usage: "hd cache pull [--cache REF] [--volumes]",
  options: WITH_VOLUMES,
  async run(ctx) {
    const { spec, store, rc, steps } = await setup(ctx);
    const host = spec.environment.base === null ? await HostRuntime.create(spec, store) : null;
    const out: ({ index: number; hash: string; state: string } & Partial<FetchStats>)[] = [];
    for (const s of steps) {
      if (s.result) {
        out.push({ index: s.index, hash: s.hash, state: "local" });
        continue;
      }
      const got = await restoreStep(store, rc, s.hash, async (tree) => {
        if (host) await host.adopt(s.index, s.hash, tree);
        else recordLayer(store, s.hash, tree);
      });
      out.push({ index: s.index, hash: s.hash, state: got ? "pulled" : "missing", ...got?.stats });
    }
    const env = spec.environment.name;
    const volumes = ctx.values.volumes === true
      ? await pullVolumes(store, rc, env, specVolumeNames(spec))
      : undefined;
    const said: Record<string, string> = {
      restore: "pulled (checked out by the next `hd up`)",
      same: "local (the same snapshot)",
      "keep-local": "kept this machine's (`hd down -v` removes it, then pull again)",
      missing: "missing",
    };
    ctx.out.result(
      { remote: rc.describe, steps: out, volumes },
      () =>
        [
          ...out.map((s) => `step ${s.index + 1} (${s.hash.slice(0, 12)}): ${s.state}`),
          ...(volumes ?? []).map((v) => `volume ${v.name}: ${said[v.action]}`),
        ].join("\n"),
    );
    return 0;
  },
};
