/**
 * `hd export [--to DEST] [--service NAME]`: the environment as an OCI image — the base image's
 * layers as they are, the apt layer, each build step's output layer, and the project's tracked
 * files at the working directory — with a config from hd.toml (Env, WorkingDir, ExposedPorts from
 * the services' ports, Cmd of the chosen service). DEST is `oci:DIR[:TAG]`,
 * `docker-archive:FILE[:REF]` or a registry reference (a push). See docs/export.md.
 *
 * @example
 * ```sh
 * hd export --to oci:/tmp/img:1
 * hd export --to 127.0.0.1:5000/app:dev --service web
 * ```
 * @module
 */
import { HdError } from "../sys/errors.ts";
import { loadProjectSpec } from "../config/parse.ts";
import type { EnvSpec, ServiceSpec } from "../config/types.ts";
import type { Command } from "./command.ts";
import { formatBytes } from "./output.ts";
import type { ExportLayer, ExportPlan, RuntimeConfig } from "../oci/export.ts";

/** The service whose command becomes the image's Cmd: `name`, else the only one, else none. */
export function pickService(spec: EnvSpec, name: string | undefined): ServiceSpec | null {
  const all = Object.values(spec.services);
  if (name !== undefined) {
    const s = spec.services[name];
    if (!s) {
      throw new HdError(
        `Cannot export with service "${name}": hd.toml has no [services.${name}]`,
        all.length
          ? `name one of: ${all.map((x) => x.name).join(", ")}`
          : "hd.toml has no services",
        2,
      );
    }
    return s;
  }
  return all.length === 1 ? all[0] : null;
}

/** The runtime config of the image: the environment's variables and workdir, and the service's. */
export function runtimeConfig(
  spec: EnvSpec,
  env: Record<string, string>,
  workdir: string,
  service: ServiceSpec | null,
  base: Pick<RuntimeConfig, "Entrypoint" | "Cmd" | "User">,
): RuntimeConfig {
  const vars = { ...env, ...(service?.env ?? {}) };
  const out: RuntimeConfig = {
    Env: Object.entries(vars).map(([k, v]) => `${k}=${v}`),
    WorkingDir: workdir,
    Labels: { "org.opencontainers.image.title": spec.environment.name },
  };
  const ports = new Set<number>();
  for (const s of service ? [service] : Object.values(spec.services)) {
    if (s.port !== null) ports.add(s.port);
    for (const p of s.ports ?? []) ports.add(p.target);
  }
  if (ports.size) {
    out.ExposedPorts = Object.fromEntries(
      [...ports].sort((a, b) => a - b).map((p) => [`${p}/tcp`, {}]),
    );
  }
  if (service) {
    const wd = service.workdir && service.workdir !== "."
      ? `${workdir.replace(/\/$/, "")}/${service.workdir.replace(/^\.\/|\/$/g, "")}`
      : workdir;
    out.WorkingDir = wd;
    out.Entrypoint = ["/bin/sh", "-c"];
    out.Cmd = [service.command];
  } else {
    if (base.Entrypoint) out.Entrypoint = base.Entrypoint;
    if (base.Cmd) out.Cmd = base.Cmd;
  }
  // who runs it: the service's own user, else [environment].user, else the base image's
  const user = service?.user ?? spec.environment.user ?? base.User;
  if (user) out.User = user;
  if (service?.labels) out.Labels = { ...out.Labels, ...service.labels };
  return out;
}

/**
 * The named volumes of `service` to export (`--volumes`): each `NAME:TARGET` with the snapshot
 * `hd down` stored (`snapshot(name)`, the ref `volumes/<env>/<name>`), as a layer at its target.
 * Without a service, or with a volume never snapshotted, a clear error (nothing is written yet).
 */
export function volumeLayers(
  env: string,
  service: ServiceSpec | null,
  snapshot: (name: string) => string | null,
): ExportLayer[] {
  if (!service) {
    throw new HdError(
      "Cannot export volumes: no service is chosen (volumes are mounted per service)",
      "name one with --service NAME",
      2,
    );
  }
  if (service.image !== undefined) {
    throw new HdError(
      `Cannot export the volumes of service "${service.name}": it runs its own image ` +
        `(${service.image}), not the environment`,
      "hd export writes the environment's image; name a service that runs in it (--service)",
      2,
    );
  }
  const out: ExportLayer[] = [];
  for (const m of service.volumes ?? []) {
    if (m.type !== "volume" || m.source === "") continue;
    const tree = snapshot(m.source);
    if (tree === null) {
      throw new HdError(
        `Cannot export volume "${m.source}" of service "${service.name}": the store has no ` +
          `snapshot of it (ref volumes/${env}/${m.source})`,
        "run the environment (`hd up`) and stop it (`hd down`): hd down stores each volume",
      );
    }
    out.push({
      label: `volume ${m.source} at ${m.target}`,
      tree,
      prefix: `${m.target.replace(/^\/+|\/+$/g, "")}/`,
      volume: true,
    });
  }
  return out;
}

/** SOURCE_DATE_EPOCH as seconds (0 when unset); throws on a malformed value. */
export function sourceDateEpoch(v: string | undefined): number {
  if (v === undefined || v === "") return 0;
  if (!/^\d{1,12}$/.test(v)) {
    throw new HdError(
      `Cannot use SOURCE_DATE_EPOCH=${v.slice(0, 40)}: not a number of seconds`,
      "unset it or write e.g. SOURCE_DATE_EPOCH=1700000000",
      2,
    );
  }
  return Number(v);
}

/** `hd export`. */
export const exportCmd: Command = {
  name: "export",
  summary: "export the environment as an OCI image (a layout, a docker archive, or a push)",
  usage:
    "hd export [--to DEST] [--service NAME] [--volumes] [--file hd.toml] [--insecure-registry HOST]…\n\n" +
    "DEST is oci:DIR[:TAG] (an OCI image layout), docker-archive:FILE[:REF] (a `docker save`\n" +
    "tar) or a registry reference REGISTRY/REPO[:TAG] (pushed; blobs the registry has are\n" +
    "skipped). Default: oci:.hd/export:latest in the project. Layers: the base image's as they\n" +
    "are, each build step's output, the project's tracked files at the working directory, and\n" +
    "with --volumes the service's named volumes (as `hd down` stored them) at their targets.\n" +
    "Mtimes of written layers are SOURCE_DATE_EPOCH (default 0): the same environment gives the\n" +
    "same image digest.",
  options: {
    to: { type: "string", help: "where to write the image (see above)" },
    service: {
      type: "string",
      help: "the service whose command is the image's Cmd (default: the only one, or none)",
    },
    volumes: {
      type: "boolean",
      help: "also the service's named volumes (the snapshots `hd down` stores) at their targets",
    },
    file: { type: "string", help: "the hd.toml to use (default: found from the cwd)" },
    "insecure-registry": {
      type: "string",
      multiple: true,
      help: "reach HOST over plain http (loopback hosts always are)",
    },
  },
  async run(ctx) {
    if (ctx.positionals.length) {
      throw new HdError(
        `Cannot export: unexpected argument "${ctx.positionals[0]}"`,
        "usage: hd export [--to DEST]",
        2,
      );
    }
    const spec = loadProjectSpec(typeof ctx.values.file === "string" ? ctx.values.file : undefined);
    if (spec.environment.base === null) {
      throw new HdError(
        `Cannot export ${spec.environment.name}: hd.toml has no base image`,
        'add `base = "IMAGE"` to [environment]; an image needs a root filesystem',
      );
    }
    const service = pickService(
      spec,
      typeof ctx.values.service === "string" ? ctx.values.service : undefined,
    );
    const epoch = sourceDateEpoch(Deno.env.get("SOURCE_DATE_EPOCH"));
    const store = ctx.store();
    // checked before any build step runs
    const volumes = ctx.values.volumes === true
      ? volumeLayers(
        spec.environment.name,
        service,
        (n) => store.getRef(`volumes/${spec.environment.name}/${n}`),
      )
      : [];
    const to = typeof ctx.values.to === "string"
      ? ctx.values.to
      : `oci:${spec.dir}/.hd/export:latest`;
    const { parseDest, exportImage } = await import("../oci/export.ts");
    parseDest(to); // a bad DEST fails before any build step runs
    const { prepareEnv } = await import("../runtime/sandbox_steps.ts");
    const { getNode } = await import("../dag/dag.ts");
    const env = await prepareEnv(store, spec, {
      onNote: (t) => ctx.out.note(`hd: ${t}`),
      onStep: (s, cached) =>
        ctx.out.note(`hd: step ${s.index + 1} ${cached ? "cached" : "running"}: ${s.spec.run}`),
      onLine: (l) => ctx.out.note(`build | ${l}`),
    });
    const img = env.image;
    // media types of the base layers, from the manifest recorded at pull time
    let mediaTypes: string[] = [];
    try {
      const rec = getNode(store, img.record);
      const mid = rec.type === "env" ? rec.children.find((c) => c.role === "manifest")?.id : null;
      if (mid) {
        const m = JSON.parse(new TextDecoder().decode(store.getObject(mid)));
        mediaTypes = (m.layers ?? []).map((l: { mediaType?: string }) => l.mediaType ?? "");
      }
    } catch { /* re-emitted below */ }
    const layers: ExportLayer[] = env.layers.map((tree, i) => {
      if (i < img.layers.length) {
        const l = img.layers[i];
        return {
          label: `base layer ${i + 1} of ${img.source}`,
          tree,
          base: l.digest && mediaTypes[i]
            ? {
              digest: l.digest,
              diffId: l.diffId,
              size: l.size,
              mediaType: mediaTypes[i],
              source: img.source,
            }
            : undefined,
        };
      }
      const step = env.steps.find((s) => s.layer === tree);
      return { label: step ? `step ${step.index + 1}: ${step.run}` : "apt packages", tree };
    });
    layers.push({
      label: `project files at ${env.workdir}`,
      tree: env.compiled.filesRoot,
      prefix: env.workdir === "/" ? "" : `${env.workdir.replace(/^\/+|\/+$/g, "")}/`,
    });
    layers.push(...volumes); // last: a volume's mount hides what is below it
    const plan: ExportPlan = {
      layers,
      config: runtimeConfig(spec, env.env, env.workdir, service, img.config.config ?? {}),
      epoch,
      architecture: img.config.architecture,
    };
    const insecure = (ctx.values["insecure-registry"] as string[] | undefined) ?? [];
    const r = await exportImage(store, plan, to, {
      insecure,
      onProgress: (t) => ctx.out.progress(`hd export: ${t}`),
    });
    ctx.out.clearProgress();
    ctx.out.result(r, () => {
      const lines = r.layers.map((l) =>
        `  ${l.digest.slice(0, 19)}  ${formatBytes(l.size).padStart(9)}  ${l.how}${
          l.push ? `/${l.push}` : ""
        }  ${l.label}`
      );
      return [
        `exported ${spec.environment.name} to ${r.dest}`,
        `digest ${r.digest}`,
        ...lines,
        `${formatBytes(r.bytesWritten)} ${
          r.blobsUploaded ? `uploaded in ${r.blobsUploaded} blobs` : "written"
        } in ${(r.ms / 1000).toFixed(1)} s`,
      ].join("\n");
    });
    return 0;
  },
};
