/**
 * `hd exec CMD…`: runs a command with the environment's variables ([environment].env on top of
 * the caller's) in its working directory, and exits with the command's exit code. With a `base`
 * image the command runs in the sandbox, in the environment's root.
 *
 * @example
 * ```sh
 * hd exec node -e 'console.log(process.env.GREETING)'
 * hd exec -- sh -c 'echo $PWD'
 * ```
 * @module
 */
import { HdError } from "../sys/errors.ts";
import { loadProjectSpec } from "../config/parse.ts";
import type { Command } from "./command.ts";

/** `hd exec`. */
export const exec: Command = {
  name: "exec",
  summary: "run a command in the environment (its variables and working directory)",
  usage: "hd exec [--] CMD [ARG…]",
  options: {},
  passThrough: true,
  async run(ctx) {
    // everything after `exec` is the command, flags included (except hd's own leading globals)
    const argv = [...Deno.args];
    let i = argv.indexOf("exec") + 1;
    while (i < argv.length && ["--json", "--debug"].includes(argv[i])) i++;
    while (i < argv.length && argv[i] === "--store") i += 2;
    if (argv[i] === "--") i++;
    const cmd = i > 0 && i < argv.length && argv.includes("exec") ? argv.slice(i) : ctx.positionals;
    if (cmd.length === 0) {
      throw new HdError("Cannot exec: no command given", "usage: hd exec [--] CMD [ARG…]", 2);
    }
    const spec = loadProjectSpec();
    if (spec.environment.base !== null) {
      // in the environment's root (the image and the steps' layers), src/cli/shell.ts
      const { runInSandbox } = await import("./shell.ts");
      return await runInSandbox(ctx, spec, cmd);
    }
    const wd = spec.environment.workdir && !spec.environment.base
      ? (spec.environment.workdir.startsWith("/")
        ? spec.environment.workdir
        : `${spec.dir}/${spec.environment.workdir}`)
      : spec.dir;
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(cmd[0], {
        args: cmd.slice(1),
        cwd: wd,
        env: { ...spec.environment.env, HD_ENV: spec.environment.name },
        stdin: "inherit",
        stdout: "inherit",
        stderr: "inherit",
      }).spawn();
    } catch (e) {
      throw new HdError(
        `Cannot exec ${cmd[0]}: ${
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
  },
};
