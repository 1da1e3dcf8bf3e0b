/**
 * `hd shell [-- CMD…]`: an interactive shell (or CMD) inside the environment's sandbox — the
 * base image's layers and the build steps' layers under overlayfs, the project at the working
 * directory, a runc container (src/sandbox/container.ts) on the host's network. Needs a `base` in
 * hd.toml. Uncached build steps run first; the exit code passes through. The root is unmounted
 * afterwards unless an `hd up` (or another `hd exec`) of the project uses it.
 *
 * @example
 * ```sh
 * hd shell                  # /bin/bash or /bin/sh in /app
 * hd shell -- node -v       # one command
 * ```
 * @module
 */
import { HdError } from "../sys/errors.ts";
import { loadProjectSpec } from "../config/parse.ts";
import type { EnvSpec } from "../config/types.ts";
import type { Command, Context } from "./command.ts";

async function listConflicts(ctx: Context, spec: EnvSpec): Promise<number> {
  const { prepareEnv } = await import("../runtime/sandbox_steps.ts");
  const { layerConflicts } = await import("../sandbox/rootfs.ts");
  const store = ctx.store();
  const env = await prepareEnv(store, spec, { onNote: (t) => ctx.out.note(`hd: ${t}`) });
  const names = env.layers.map((id, i) =>
    i < env.image.layers.length
      ? `image layer ${i + 1}`
      : env.steps.find((s) => s.layer === id)
      ? `step ${env.steps.find((s) => s.layer === id)!.index + 1}`
      : "apt layer"
  );
  const conflicts = layerConflicts(store, env.layers);
  ctx.out.result(
    { layers: env.layers, conflicts },
    () =>
      conflicts.length === 0
        ? `no file is provided by more than one of the ${env.layers.length} layers`
        : conflicts.map((c) => `${c.path}: ${c.layers.map((i) => names[i]).join(", ")}`)
          .join("\n"),
  );
  return 0;
}

/**
 * Prepares the environment of `spec` (pull, layers, uncached steps), mounts its root and runs
 * `argv` there (a shell when empty) with the terminal; returns the exit code. `hd exec` uses it
 * for an environment with a base.
 */
export async function runInSandbox(
  ctx: Context,
  spec: EnvSpec,
  argv: string[],
  user?: string,
): Promise<number> {
  const { prepareEnv, mountEnv, serveEnvLayers, envSandbox, envRunDir, releaseEnvMount } =
    await import(
      "../runtime/sandbox_steps.ts"
    );
  const { spawnSandbox } = await import("../sandbox/container.ts");
  const { othersRunningIn } = await import("../sandbox/runc.ts");
  const { readUpState } = await import("../services/control.ts");
  const { resolveInRoot } = await import("../sandbox/inroot.ts");
  const store = ctx.store();
  const env = await prepareEnv(store, spec, {
    onNote: (t) => ctx.out.note(`hd: ${t}`),
    onStep: (s, cached) =>
      ctx.out.note(`hd: step ${s.index + 1} ${cached ? "cached" : "running"}: ${s.spec.run}`),
    onLine: (l) => ctx.out.note(`build | ${l}`),
    remote: (await import("../runtime/remote_steps.ts")).specRemote(store, spec),
  });
  if (env.lazy) await serveEnvLayers(env);
  const root = mountEnv(env);
  if (root.mode === "hardlink") {
    ctx.out.note(`hd: overlayfs unavailable (${root.why ?? "?"}); using a hardlink farm`);
  }
  if (argv.length === 0) {
    let sh = "/bin/sh";
    try {
      Deno.statSync(resolveInRoot(root.target, "/bin/bash"));
      sh = "/bin/bash";
    } catch { /* no bash in the image */ }
    argv = [sh];
  }
  // as a service without `user` runs: `--user`, else [environment] user, else root
  const { resolveUserInRoot } = await import("../runtime/image_services.ts");
  const who = user ?? spec.environment.user;
  const what = user !== undefined ? "--user" : "[environment] user";
  const u = who === undefined ? null : resolveUserInRoot(root.target, who, what);
  const child = spawnSandbox(envSandbox(env, root.target, argv, {
    ...(u
      ? {
        env: { ...env.env, HOME: u.home },
        user: { uid: u.uid, gid: u.gid, additionalGids: u.additionalGids },
      }
      : {}),
  }));
  const ign = () => {}; // runc forwards signals to tini, tini to the command
  Deno.addSignalListener("SIGINT", ign);
  const st = await child.status;
  Deno.removeSignalListener("SIGINT", ign);
  // the root stays mounted only while something uses it: an `hd up`, another `hd exec`
  const up = readUpState(spec.dir);
  if (!up?.alive && !othersRunningIn(`${envRunDir(spec)}/runc`, child.id)) releaseEnvMount(spec);
  return st.signal ? 128 + 15 : st.code;
}

/** `hd shell`. */
export const shell: Command = {
  name: "shell",
  summary: "open a shell (or run a command) inside the environment's sandbox",
  usage: "hd shell [--file hd.toml] [--user USER] [--] [CMD [ARG…]]",
  options: {
    file: { type: "string", help: "the hd.toml to use (default: found from the cwd)" },
    user: {
      type: "string",
      help: "run as NAME|UID[:GROUP|GID] of the image (default: [environment] user, else root)",
    },
    conflicts: {
      type: "boolean",
      help: "list files that more than one layer provides (package databases and caches excepted)",
    },
  },
  passThrough: true,
  async run(ctx) {
    const spec = loadProjectSpec(typeof ctx.values.file === "string" ? ctx.values.file : undefined);
    if (spec.environment.base === null) {
      throw new HdError(
        `Cannot open a shell in ${spec.environment.name}: hd.toml has no base image`,
        'add `base = "IMAGE"` to [environment] (or use `hd exec` to run on the host)',
      );
    }
    if (ctx.values.conflicts) return await listConflicts(ctx, spec);
    let argv = ctx.positionals;
    if (argv[0] === "--") argv = argv.slice(1);
    return await runInSandbox(ctx, spec, argv, userOption(ctx));
  },
};

/** The `--user` option's value, if given (a non-empty string). */
export function userOption(ctx: Context): string | undefined {
  const u = ctx.values.user;
  if (u === undefined) return undefined;
  if (typeof u !== "string" || u === "") {
    throw new HdError(
      "Cannot use --user: no user given",
      "e.g. --user root or --user 1000:1000",
      2,
    );
  }
  return u;
}
