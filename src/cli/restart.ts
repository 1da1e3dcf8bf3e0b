/**
 * `hd restart SERVICE…`: restarts services of the running `hd up` (and the services that depend
 * on them, after them); others keep running. Also revives a crashed service.
 *
 * @example
 * ```sh
 * hd restart api
 * ```
 * @module
 */
import { replicaTargets } from "../services/profiles.ts";
import { HdError } from "../sys/errors.ts";
import { loadProjectSpec } from "../config/parse.ts";
import { callControl, controlSocketPath, readUpState } from "../services/control.ts";
import { didYouMean } from "../config/suggest.ts";
import { cleanupIfStale } from "../services/report.ts";
import type { Command } from "./command.ts";

/** `hd restart`. */
export const restart: Command = {
  name: "restart",
  summary: "restart a service (and its dependents) of the running environment",
  usage: "hd restart SERVICE… [--file hd.toml]",
  options: { file: { type: "string", help: "the hd.toml to use (default: found from the cwd)" } },
  async run(ctx) {
    const spec = loadProjectSpec(typeof ctx.values.file === "string" ? ctx.values.file : undefined);
    if (ctx.positionals.length === 0) {
      throw new HdError(
        "Cannot restart: no service named",
        `usage: hd restart SERVICE… (services: ${Object.keys(spec.services).join(", ")})`,
        2,
      );
    }
    // a scaled service's name stands for its replicas
    const names = replicaTargets(spec.services, ctx.positionals);
    for (const n of names) {
      if (!spec.services[n]) {
        const g = didYouMean(n, Object.keys(spec.services));
        throw new HdError(
          `Cannot restart "${n}": no such service in ${spec.file}`,
          g ? `did you mean "${g}"?` : `services: ${Object.keys(spec.services).join(", ")}`,
          2,
        );
      }
    }
    cleanupIfStale(spec.dir);
    const st = readUpState(spec.dir);
    if (!st?.alive) {
      throw new HdError(
        `Cannot restart ${ctx.positionals.join(", ")}: ${spec.environment.name} is not running`,
        "start it with `hd up -d`",
      );
    }
    const res = await callControl(controlSocketPath(spec.dir), {
      op: "restart",
      services: names,
    });
    if (typeof res.error === "string") {
      throw new HdError(`Cannot restart ${ctx.positionals.join(", ")}: ${res.error}`, "");
    }
    const restarted = res.restarted as string[];
    ctx.out.result({ restarted }, () => `restarted ${restarted.join(", ")}`);
    return 0;
  },
};
