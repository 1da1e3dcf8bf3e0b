/**
 * `hd down`: stops the running `hd up` of this project (services in reverse dependency order,
 * grace, then SIGKILL of each process group); a detached supervisor leaves a spare for the next
 * `hd up -d` (src/services/spare.ts). With nothing running it says so, stops that spare, and exits
 * 0; a stale state left by a killed supervisor is cleaned up (its leftover service processes are
 * killed). With a base image, the environment's root is then unmounted and runc states of killed
 * containers are deleted.
 *
 * @example
 * ```sh
 * hd down
 * ```
 * @module
 */
import { HdError } from "../sys/errors.ts";
import { loadProjectSpec } from "../config/parse.ts";
import {
  callControl,
  controlSocketPath,
  readUpState,
  removeUpState,
  upLockHeld,
} from "../services/control.ts";
import { bootId, procInfo, sameProcess, signalRecorded } from "../sys/proc.ts";
import { cleanupIfStale, formatCleanup } from "../services/report.ts";
import { stopSpare } from "../services/spare.ts";
import type { Command } from "./command.ts";
import { exists } from "../sys/fs.ts";

/** `hd down`. */
export const down: Command = {
  name: "down",
  summary: "stop the services of `hd up` (reverse dependency order)",
  usage: "hd down [-v] [--file hd.toml]",
  options: {
    file: { type: "string", help: "the hd.toml to use (default: found from the cwd)" },
    volumes: {
      type: "boolean",
      short: "v",
      help: "also remove the environment's named volumes (directories and refs)",
    },
  },
  async run(ctx) {
    const spec = loadProjectSpec(typeof ctx.values.file === "string" ? ctx.values.file : undefined);
    const dir = spec.dir;
    const stale = cleanupIfStale(dir);
    // named volumes: kept as trees in the store (refs volumes/<env>/<name>), or removed with -v
    const volumes = async () => {
      if (!exists(`${ctx.storeRoot}/refs`) && !exists(`${ctx.storeRoot}/volumes`)) return;
      const vol = await import("../runtime/volumes.ts");
      const env = spec.environment.name;
      if (ctx.values.volumes === true) {
        const gone = vol.removeVolumes(ctx.store(), env);
        if (gone.length) ctx.out.note(`removed volumes: ${gone.join(", ")}`);
      } else {
        const kept = await vol.snapshotVolumes(ctx.store(), env);
        for (const k of kept) ctx.out.note(`volume ${k.name}: ${k.ref} → ${k.tree.slice(0, 12)}`);
      }
    };
    // the sandbox's root is unmounted once nothing runs in it (the project can then be deleted)
    const release = async () => {
      await volumes();
      (await import("../runtime/secrets.ts")).removeSecrets(dir);
      const images = await import("../runtime/image_services.ts");
      if (spec.environment.base === null && !images.imageServiceNames(spec).length) return;
      const { releaseEnv } = await import("../runtime/sandbox_steps.ts");
      const store = exists(`${ctx.storeRoot}/mounts`) ? ctx.store() : null;
      await releaseEnv(spec, store);
      images.releaseImageServices(spec);
      await images.releaseImageLayers(spec, store);
    };
    // up.json unreadable (damaged, or overwritten) while an `hd up` still holds the project's lock:
    // ask it over its control socket — asking signals nothing, so no record needs to be trusted
    if ((stale?.invalid !== undefined || readUpState(dir) === null) && upLockHeld(dir)) {
      const t0 = performance.now();
      let asked = false;
      try {
        await callControl(controlSocketPath(dir), { op: "down" }, 5000);
        asked = true;
      } catch { /* no answer: reported below */ }
      const limit = 10_000 + spec.options.restartGraceMs * (Object.keys(spec.services).length + 1);
      while (asked && upLockHeld(dir) && performance.now() - t0 < limit) {
        await new Promise((r) => setTimeout(r, 25));
      }
      if (!asked || upLockHeld(dir)) {
        throw new HdError(
          `Cannot stop ${spec.environment.name}: .hd/up.json is unreadable and the running \`hd up\` does not answer on .hd/control.sock`,
          "find it with `fuser .hd/up.lock` and stop it yourself; hd signals only what its state proves it started",
        );
      }
      await release();
      const ms = Math.round(performance.now() - t0);
      ctx.out.result(
        { running: false, stopped: true, viaSocket: true, ms },
        () =>
          `stopped ${spec.environment.name} over its control socket in ${ms} ms (.hd/up.json was unreadable)`,
      );
      return 0;
    }
    if (stale) {
      await release();
      ctx.out.result(
        stale.invalid !== undefined ? { running: false, invalid: stale.invalid } : {
          running: false,
          stale: true,
          pid: stale.pid,
          killed: stale.killedServices,
          left: stale.left,
        },
        () => `nothing running; ${formatCleanup(stale)}`,
      );
      return 0;
    }
    const st = readUpState(dir);
    if (!st || !st.state) {
      await release();
      // the spare the last `hd down` left (src/services/spare.ts): a second `hd down` stops it
      const spare = await stopSpare(dir);
      ctx.out.result(
        { running: false, ...(spare ? { spareStopped: true } : {}) },
        () =>
          `nothing running for ${spec.environment.name}` +
          (spare ? " (its spare supervisor stopped)" : ""),
      );
      return 0;
    }
    const t0 = performance.now();
    const sup = {
      pid: st.state.pid,
      startTime: st.state.startTime,
      exe: st.state.exe,
      bootId: st.state.bootId,
    };
    try {
      await callControl(controlSocketPath(dir), { op: "down" }, 5000);
    } catch {
      // not answering: ask it by signal (only when it provably is the supervisor hd started)
      signalRecorded("pid", sup, "SIGTERM");
    }
    const limit = 10_000 + spec.options.restartGraceMs * (Object.keys(spec.services).length + 1);
    while (sameProcess(sup, procInfo(sup.pid), bootId())) {
      if (performance.now() - t0 > limit) {
        throw new HdError(
          `Cannot stop ${spec.environment.name}: the supervisor (pid ${st.state.pid}) is still running`,
          `see .hd/logs/hd.log; \`kill -9 ${st.state.pid}\` then \`hd down\` cleans up`,
        );
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    const left = readUpState(dir);
    if (left?.state?.pid === st.state.pid) removeUpState(dir);
    await release();
    const ms = Math.round(performance.now() - t0);
    ctx.out.result(
      { running: false, stopped: true, pid: st.state.pid, ms },
      () => `stopped ${spec.environment.name} (supervisor pid ${st.state.pid}) in ${ms} ms`,
    );
    return 0;
  },
};
