/**
 * `hd exec [SERVICE] CMD…`: runs a command with the environment's variables ([environment].env on
 * top of the caller's) in its working directory, and exits with the command's exit code. With a
 * `base` image the command runs in the sandbox, in the environment's root.
 *
 * When the first argument names a service, the command runs inside that service: on the host in
 * its `workdir` with its `env` (running or not); for a sandboxed service inside its running
 * container (nsenter into its namespaces, root, working directory, user and environment — see
 * src/services/health.ts). Nothing after the command's name is parsed as hd's option:
 * `hd exec db psql -h 127.0.0.1 --help` passes `-h 127.0.0.1 --help` to psql. In a base's root
 * the command runs as `[environment] user` (else root), or as `--user NAME|UID[:GROUP]`.
 *
 * @example
 * ```sh
 * hd exec node -e 'console.log(process.env.GREETING)'
 * hd exec db psql -h 127.0.0.1
 * hd exec -- sh -c 'echo $PWD'
 * ```
 * @module
 */
import { HdError } from "../sys/errors.ts";
import { loadProjectSpec } from "../config/parse.ts";
import type { EnvSpec } from "../config/types.ts";
import type { Command, Context } from "./command.ts";

async function runAttached(
  ctx: Context,
  argv: string[],
  opts: { cwd: string; env: Record<string, string>; clearEnv?: boolean },
): Promise<number> {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(argv[0], {
      args: argv.slice(1),
      cwd: opts.cwd,
      env: opts.env,
      clearEnv: opts.clearEnv ?? false,
      stdin: "inherit",
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
  } catch (e) {
    throw new HdError(
      `Cannot exec ${argv[0]}: ${
        e instanceof Deno.errors.NotFound ? "command not found" : (e as Error).message
      }`,
      "check the command name and PATH",
      127,
    );
  }
  const fwd = () => {
    try {
      child.kill("SIGINT");
    } catch { /* gone */ }
  };
  Deno.addSignalListener("SIGINT", fwd);
  const st = await child.status;
  Deno.removeSignalListener("SIGINT", fwd);
  if (ctx.out.json) ctx.out.result({ code: st.code, signal: st.signal }, () => "");
  return st.signal
    ? 128 + (st.signal === "SIGKILL" ? 9 : st.signal === "SIGINT" ? 2 : 15)
    : st.code;
}

/** Runs `argv` inside service `name` (see the module doc). */
async function execInService(
  ctx: Context,
  spec: EnvSpec,
  name: string,
  argv: string[],
  user: string | undefined,
): Promise<number> {
  const svc = spec.services[name];
  const { readUpState } = await import("../services/control.ts");
  const { procStartTime } = await import("../sys/proc.ts");
  const { servicePids } = await import("../services/readiness.ts");
  const { containerEnv, containerInit, nsenterArgv } = await import("../services/health.ts");
  // the running service's group, if its leader is still the process hd recorded
  const up = readUpState(spec.dir);
  const group = up?.alive ? up.state.groups.find((g) => g.service === name) : undefined;
  const leader = group && procStartTime(group.pgid) === group.startTime ? group.pgid : null;
  const init = leader !== null ? containerInit(servicePids(leader)) : null;
  if (init !== null) {
    // --user: a user of the container's own root (its /etc/passwd, read inside it)
    const { resolveUserInRoot } = await import("../runtime/image_services.ts");
    const as = user === undefined
      ? undefined
      : resolveUserInRoot(`/proc/${init}/root`, user, "--user");
    return await runAttached(ctx, nsenterArgv(init, argv, as), {
      cwd: "/",
      env: containerEnv(init),
      clearEnv: true,
    });
  }
  if (spec.environment.base !== null) {
    throw new HdError(
      `Cannot exec in ${name}: it is not running`,
      leader === null
        ? "start it with `hd up -d` (or `hd start " + name +
          "`), or run `hd exec CMD…` in the environment"
        : "it has no container yet; try again in a moment",
    );
  }
  if (user !== undefined) {
    throw new HdError(
      `Cannot exec as another user in ${name}: it runs on the host (no base)`,
      "run it with sudo -u, or drop --user",
      2,
    );
  }
  const cwd = svc.workdir && svc.workdir !== "." ? `${spec.dir}/${svc.workdir}` : spec.dir;
  return await runAttached(ctx, argv, {
    cwd,
    env: { ...spec.environment.env, ...svc.env, HD_ENV: spec.environment.name, HD_SERVICE: name },
  });
}

/** `hd exec`. */
export const exec: Command = {
  name: "exec",
  summary: "run a command in the environment (its variables and working directory)",
  usage: "hd exec [--file hd.toml] [--user USER] [SERVICE] [--] CMD [ARG…]",
  options: {
    file: { type: "string", help: "the hd.toml to use (default: found from the cwd)" },
    user: {
      type: "string",
      help:
        "in a base's root: run as NAME|UID[:GROUP|GID] (default: [environment] user, else root)",
    },
  },
  passThrough: true,
  async run(ctx) {
    // everything from the first positional on is the command, flags included (src/cli/main.ts)
    const cmd = ctx.positionals[0] === "--" ? ctx.positionals.slice(1) : [...ctx.positionals];
    if (cmd.length === 0) {
      throw new HdError(
        "Cannot exec: no command given",
        "usage: hd exec [SERVICE] [--] CMD [ARG…]",
        2,
      );
    }
    const spec = loadProjectSpec(typeof ctx.values.file === "string" ? ctx.values.file : undefined);
    // a scaled service's name means its first replica (compose's `exec --index 1`)
    if (!Object.hasOwn(spec.services, cmd[0]) && Object.hasOwn(spec.services, `${cmd[0]}-1`)) {
      if (spec.services[`${cmd[0]}-1`].replicaOf?.name === cmd[0]) cmd[0] = `${cmd[0]}-1`;
    }
    if (Object.hasOwn(spec.services, cmd[0])) {
      const rest = cmd[1] === "--" ? cmd.slice(2) : cmd.slice(1);
      if (rest.length === 0) {
        throw new HdError(
          `Cannot exec in ${cmd[0]}: no command given`,
          `usage: hd exec ${cmd[0]} CMD [ARG…] (e.g. hd exec ${cmd[0]} sh)`,
          2,
        );
      }
      const { userOption } = await import("./shell.ts");
      return await execInService(ctx, spec, cmd[0], rest, userOption(ctx));
    }
    if (spec.environment.base !== null) {
      // in the environment's root (the image and the steps' layers), src/cli/shell.ts
      const { runInSandbox, userOption } = await import("./shell.ts");
      return await runInSandbox(ctx, spec, cmd, userOption(ctx));
    }
    if (ctx.values.user !== undefined) {
      throw new HdError(
        `Cannot exec as another user in ${spec.environment.name}: it runs on the host (no base)`,
        "run it with sudo -u, or drop --user",
        2,
      );
    }
    const wd = spec.environment.workdir && !spec.environment.base
      ? (spec.environment.workdir.startsWith("/")
        ? spec.environment.workdir
        : `${spec.dir}/${spec.environment.workdir}`)
      : spec.dir;
    return await runAttached(ctx, cmd, {
      cwd: wd,
      env: { ...spec.environment.env, HD_ENV: spec.environment.name },
    });
  },
};
