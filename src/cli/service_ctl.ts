/**
 * `hd start SERVICE…`, `hd stop SERVICE…` and `hd ps`: the services of the running `hd up`, over
 * its control socket. `stop` stops the named services (what depends on them keeps running, as
 * `docker compose stop`) and keeps them stopped until `hd start`/`hd restart`; `start` starts them
 * and what they depend on; `ps` prints the services table of `hd status`.
 *
 * @example
 * ```sh
 * hd stop worker && hd start worker
 * hd ps
 * ```
 * @module
 */
import { HdError } from "../sys/errors.ts";
import { loadProjectSpec } from "../config/parse.ts";
import type { EnvSpec } from "../config/types.ts";
import { callControl, controlSocketPath, readUpState } from "../services/control.ts";
import { didYouMean } from "../config/suggest.ts";
import { cleanupIfStale, formatServices, gatherServices } from "../services/report.ts";
import type { Command, Context } from "./command.ts";

const FILE = { type: "string", help: "the hd.toml to use (default: found from the cwd)" } as const;

function specOf(ctx: Context): EnvSpec {
  return loadProjectSpec(typeof ctx.values.file === "string" ? ctx.values.file : undefined);
}

/** Checks the named services and that the environment is up; the spec. */
function running(ctx: Context, verb: string): EnvSpec {
  const spec = specOf(ctx);
  const names = Object.keys(spec.services);
  if (ctx.positionals.length === 0) {
    throw new HdError(
      `Cannot ${verb}: no service named`,
      `usage: hd ${verb} SERVICE… (services: ${names.join(", ")})`,
      2,
    );
  }
  for (const n of ctx.positionals) {
    if (!Object.hasOwn(spec.services, n)) {
      const g = didYouMean(n, names);
      throw new HdError(
        `Cannot ${verb} "${n}": no such service in ${spec.file}`,
        g ? `did you mean "${g}"?` : `services: ${names.join(", ")}`,
        2,
      );
    }
  }
  cleanupIfStale(spec.dir);
  if (!readUpState(spec.dir)?.alive) {
    throw new HdError(
      `Cannot ${verb} ${ctx.positionals.join(", ")}: ${spec.environment.name} is not running`,
      "start it with `hd up -d`",
    );
  }
  return spec;
}

async function control(ctx: Context, op: "start" | "stop"): Promise<number> {
  const spec = running(ctx, op);
  const res = await callControl(
    controlSocketPath(spec.dir),
    { op, services: ctx.positionals },
    // stopping waits up to restart_grace per service
    60_000 + ctx.positionals.length * spec.options.restartGraceMs,
  );
  if (typeof res.error === "string") {
    throw new HdError(`Cannot ${op} ${ctx.positionals.join(", ")}: ${res.error}`, "");
  }
  ctx.out.result(
    res,
    () => `${op === "stop" ? "stopped" : "starting"} ${ctx.positionals.join(", ")}`,
  );
  return 0;
}

/** `hd start`. */
export const start: Command = {
  name: "start",
  summary: "start services (and what they depend on) of the running environment",
  usage: "hd start SERVICE… [--file hd.toml]",
  options: { file: FILE },
  run: (ctx) => control(ctx, "start"),
};

/** `hd stop`. */
export const stop: Command = {
  name: "stop",
  summary: "stop services of the running environment (until `hd start`)",
  usage: "hd stop SERVICE… [--file hd.toml]",
  options: { file: FILE },
  run: (ctx) => control(ctx, "stop"),
};

/** `hd ps`. */
export const ps: Command = {
  name: "ps",
  summary: "the services of the running environment: state, pid, restarts, port, health",
  usage: "hd ps [--file hd.toml]",
  options: { file: FILE },
  async run(ctx) {
    const spec = specOf(ctx);
    const up = await gatherServices(spec.dir);
    ctx.out.result(
      up.running ? { running: true, services: up.services } : { running: false, services: [] },
      () =>
        up.running
          ? formatServices(up.services)
          : `${spec.environment.name} is not running (\`hd up -d\` starts it)`,
    );
    return 0;
  },
};
