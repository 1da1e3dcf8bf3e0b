/**
 * Services with `image = "REF"`: each runs in a runc container of its own on that image's root,
 * whatever the environment's `base` (the other services stay on the base's root, or on the host).
 * The image is pulled into the store like a `base` (src/oci/image.ts) and its layers materialized
 * once (src/sandbox/layers.ts); each service gets an overlay root at
 * `.hd/sandbox/services/<name>/root` whose writable layer (`…/upper`) is the container's own — kept
 * across restarts, discarded by `hd down` (as `docker compose down` removes the containers).
 *
 * The image's config gives the defaults, as Docker does: `Env` (under the service's `env`),
 * `WorkingDir` (unless `workdir`), `User` (unless `user`; names resolved through the image's
 * /etc/passwd and /etc/group, read inside the root without following a symlink out of it), and
 * ENTRYPOINT/CMD combined with the service's `entrypoint`/`command` by {@link imageArgv}. The
 * project is not mounted: an image service sees only its image and the volumes it asks for
 * (src/runtime/volumes.ts). The decisions are pure functions with table tests (tests/runtime/image_services_test.ts).
 *
 * @example
 * ```ts
 * import type { Store } from "../cas/store.ts";
 * import type { EnvSpec } from "../config/types.ts";
 * declare const store: Store;
 * declare const spec: EnvSpec;
 * import { ImageServices } from "./image_services.ts";
 * const images = new ImageServices(spec, store);
 * const services = images.wrap(spec.services);   // for the supervisor
 * await images.prepare();                         // pull + materialize
 * images.ready();                                 // mount the roots, write the bundles
 * ```
 * @module
 */
import { HdError } from "../sys/errors.ts";
import type { Store } from "../cas/store.ts";
import type { EnvSpec, ServiceSpec } from "../config/types.ts";
import type { ImageConfig, PulledImage } from "../oci/image.ts";
import { materializeLayer } from "../sandbox/layers.ts";
import { isMountPoint, mountRootfs, type RootfsMode, unmountRootfs } from "../sandbox/rootfs.ts";
import { checkSandboxPath, mkdirInRoot, resolveInRoot } from "../sandbox/inroot.ts";
import { type ProcessUser, type SandboxOptions, writeBundle } from "../sandbox/container.ts";
import { serviceContainerId } from "../sandbox/runc.ts";
import { serviceBundle, wrapService } from "./sandbox_services.ts";
import type { EnvNetwork } from "./network.ts";
import { envRunDir, envSandboxDir, hostCaWanted } from "./sandbox_steps.ts";
import { type LayerMount, layerMountLive, startLayerMount, stopLayerMount } from "./lazy_layers.ts";
import { serviceMounts } from "./volumes.ts";
import { hostSecretEnv } from "./secrets.ts";

/** The default PATH when an image sets none (Docker's). */
export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/**
 * What runs, as Docker combines ENTRYPOINT and CMD: a service `entrypoint` replaces the image's
 * and clears its CMD (only the service's `command` follows it); otherwise the image's ENTRYPOINT
 * runs with the service's `command`, or the image's CMD when the service has none. Null when
 * nothing is left to run.
 */
export function imageArgv(
  service: { entrypoint?: string[]; argv?: string[] | null },
  image: Pick<NonNullable<ImageConfig["config"]>, "Entrypoint" | "Cmd"> = {},
): string[] | null {
  const ep = service.entrypoint ?? image.Entrypoint ?? [];
  const cmd = service.argv ?? (service.entrypoint ? [] : image.Cmd ?? []);
  const argv = [...ep, ...cmd];
  return argv.length ? argv : null;
}

/** The exec form of a service's command: its array, `/bin/sh -c` of its string, or null. */
export function serviceArgv(s: ServiceSpec): string[] | null {
  if (s.argv) return s.argv;
  return s.command !== "" ? ["/bin/sh", "-c", s.command] : null;
}

/** One line of /etc/passwd. */
export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

/** One line of /etc/group. */
export interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

const ID = /^\d{1,10}$/;

/** The entries of an /etc/passwd text (malformed lines skipped). */
export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f.length < 7 || !ID.test(f[2]) || !ID.test(f[3])) continue;
    out.push({ name: f[0], uid: Number(f[2]), gid: Number(f[3]), home: f[5] });
  }
  return out;
}

/** The entries of an /etc/group text (malformed lines skipped). */
export function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f.length < 4 || !ID.test(f[2])) continue;
    out.push({ name: f[0], gid: Number(f[2]), members: f[3].split(",").filter((m) => m) });
  }
  return out;
}

/** Who a service runs as, and its home directory. */
export interface ResolvedUser extends ProcessUser {
  home: string;
}

/**
 * Resolves `user` (`name`, `uid`, `name:group`, `uid:gid`; "" = root) against the image's passwd
 * and group entries, as Docker does: a name must exist; a numeric uid need not (its group is then
 * 0 and its home `/`); the supplementary groups are those that list the user by name. Throws an
 * HdError naming `what` when a name is unknown.
 */
export function resolveUser(
  user: string,
  passwd: PasswdEntry[],
  groups: GroupEntry[],
  what: string,
): ResolvedUser {
  const [u, g] = user === "" ? ["0", undefined] : user.split(":", 2);
  const numeric = ID.test(u);
  const pw = numeric ? passwd.find((p) => p.uid === Number(u)) : passwd.find((p) => p.name === u);
  if (!pw && !numeric) {
    throw new HdError(
      `Cannot run ${what} as user "${u}": the image's /etc/passwd has no such user`,
      `use a numeric id (user = "1000:1000") or a user the image defines (${
        passwd.map((p) => p.name).slice(0, 8).join(", ") || "none"
      })`,
    );
  }
  const uid = pw?.uid ?? Number(u);
  let gid = pw?.gid ?? 0;
  if (g !== undefined) {
    if (ID.test(g)) gid = Number(g);
    else {
      const gr = groups.find((x) => x.name === g);
      if (!gr) {
        throw new HdError(
          `Cannot run ${what} as group "${g}": the image's /etc/group has no such group`,
          'use a numeric id (user = "1000:1000") or a group the image defines',
        );
      }
      gid = gr.gid;
    }
  }
  const name = pw?.name;
  const additionalGids = g === undefined && name
    ? [...new Set(groups.filter((x) => x.members.includes(name)).map((x) => x.gid))]
      .filter((x) => x !== gid)
    : [];
  return { uid, gid, additionalGids, home: pw?.home || "/" };
}

/**
 * Resolves `user` (see {@link resolveUser}) through the /etc/passwd and /etc/group of the root
 * mounted at `root`, read inside it (a symlink cannot lead out).
 */
export function resolveUserInRoot(root: string, user: string, what: string): ResolvedUser {
  return resolveUser(
    user,
    parsePasswd(readInRoot(root, "/etc/passwd")),
    parseGroup(readInRoot(root, "/etc/group")),
    what,
  );
}

/** The variables of an image's config (`KEY=VALUE` lines; PATH defaulted as Docker does). */
export function imageEnvOf(cfg: ImageConfig["config"]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of cfg?.Env ?? []) {
    const i = kv.indexOf("=");
    if (i > 0) out[kv.slice(0, i)] = kv.slice(i + 1);
  }
  out.PATH ??= DEFAULT_PATH;
  return out;
}

/** Reads `/etc/<name>` of `root`, resolved inside it (a symlink cannot lead out); "" if none. */
function readInRoot(root: string, path: string): string {
  try {
    const host = resolveInRoot(root, path);
    const st = Deno.statSync(host);
    if (!st.isFile || st.size > 4 << 20) return "";
    return Deno.readTextFileSync(host);
  } catch {
    return "";
  }
}

/** The state of a mounted service root (its lowers, so a new image remounts it). */
interface RootState {
  lowers: string[];
  mode: RootfsMode;
  /** Lazy layers: the layer server the lowers are on (`root:pid`); a new server is a new root. */
  server?: string;
}

/** `.hd/sandbox/services/<name>/root.json` when it has the shape hd writes. */
function readState(path: string): RootState | null {
  try {
    const j = JSON.parse(Deno.readTextFileSync(path));
    if (
      Array.isArray(j?.lowers) && j.lowers.every((l: unknown) => typeof l === "string") &&
      (j.mode === "overlay" || j.mode === "hardlink")
    ) {
      return {
        lowers: j.lowers,
        mode: j.mode,
        ...(typeof j.server === "string" ? { server: j.server } : {}),
      };
    }
  } catch { /* none */ }
  return null;
}

/** Where the image services' lazy layer server projects their layers (one per environment). */
export function imageLayersDir(spec: EnvSpec): string {
  return `${envSandboxDir(spec)}/image-layers`;
}

/** The services of `spec` that have an image. */
export function imageServiceNames(spec: EnvSpec): string[] {
  return Object.values(spec.services).filter((s) => s.image !== undefined).map((s) => s.name);
}

/**
 * The image services of one environment (see the module doc): {@link wrap} for the supervisor,
 * {@link prepare} pulls, {@link ready} mounts the roots and writes the bundles.
 */
export class ImageServices {
  #spec: EnvSpec;
  #store: Store;
  #note: (line: string) => void;
  #images = new Map<string, PulledImage>();
  /** Lazy layers: the server projecting every image service's layers (else null: materialized). */
  #layerMount: LayerMount | null = null;

  /** `note` receives progress lines (pulls). */
  constructor(spec: EnvSpec, store: Store, note: (line: string) => void = () => {}) {
    this.#spec = spec;
    this.#store = store;
    this.#note = note;
  }

  /** True when a service has an image. */
  get any(): boolean {
    return imageServiceNames(this.#spec).length > 0;
  }

  /** `services` with each image service replaced by its wrapper (runc on its bundle). */
  wrap(
    services: Record<string, ServiceSpec>,
    net?: EnvNetwork | null,
  ): Record<string, ServiceSpec> {
    const out: Record<string, ServiceSpec> = {};
    for (const [name, s] of Object.entries(services)) {
      const orig = this.#spec.services[name];
      const addr = net?.address(name);
      if (orig?.image !== undefined) {
        out[name] = {
          ...wrapService(this.#spec, orig, shownCommand(orig)),
          ...(addr ? { readyHost: addr } : {}),
        };
      } else if (this.#spec.environment.base === null && orig?.secrets?.length) {
        // a host service: the secrets' paths in HD_SECRET_<NAME> (secrets.ts)
        out[name] = { ...s, env: { ...s.env, ...hostSecretEnv(this.#spec, orig) } };
      } else out[name] = s;
    }
    return out;
  }

  /** Pulls (when not in the store) and materializes the image of every image service. */
  /**
   * Pulls (or loads) each image service's image; with `lazy`, serves all their layers from one
   * layer server of the environment's (.hd/sandbox/image-layers) instead of materializing them —
   * a server apart from the environment's own, so a re-run build step (which replaces that one)
   * never pulls the layers from under a running image service.
   */
  async prepare(lazy = false): Promise<void> {
    for (const name of imageServiceNames(this.#spec)) {
      const ref = this.#spec.services[name].image!;
      if (this.#images.has(ref)) continue;
      // loaded here, not at start-up: node:zlib and the registry client cost every `hd up`
      const { loadImage, pullImage } = await import("../oci/image.ts");
      let img = loadImage(this.#store, ref);
      if (!img) {
        this.#note(`pulling ${ref} (service ${name})`);
        img = await pullImage(this.#store, ref);
      }
      if (!lazy) { for (const l of img.layers) materializeLayer(this.#store, l.tree); }
      this.#images.set(ref, img);
    }
    if (lazy && this.#images.size) {
      const ids = [
        ...new Set([...this.#images.values()].flatMap((i) => i.layers.map((l) => l.tree))),
      ];
      this.#layerMount = await startLayerMount(this.#store, imageLayersDir(this.#spec), ids);
    }
  }

  /** Mounts each image service's root (reused while its image is the same), writes its bundle. */
  ready(net?: EnvNetwork | null): void {
    for (const name of imageServiceNames(this.#spec)) {
      const s = this.#spec.services[name];
      const img = this.#images.get(s.image!);
      if (!img) throw new Error(`ImageServices: prepare() before ready() (${name})`);
      const root = this.#mount(name, img);
      const opts = this.options(s, img, root);
      const netns = net?.netnsPath(name);
      if (net && netns) {
        // its own namespace on the environment's bridge, the others' names in /etc/hosts
        opts.netnsPath = netns;
        opts.resolvConf = true;
        opts.binds.push({ src: net.hostsPath, dst: "/etc/hosts", readonly: true });
      }
      writeBundle(serviceBundle(this.#spec, name), opts, serviceContainerId(this.#spec.dir, name));
    }
  }

  /** The sandbox options of image service `s` on `root` (its image `img`). */
  options(s: ServiceSpec, img: PulledImage, root: string): SandboxOptions {
    const cfg = img.config.config ?? {};
    const what = `service "${s.name}"`;
    const argv = imageArgv({ entrypoint: s.entrypoint, argv: serviceArgv(s) }, cfg);
    if (!argv) {
      throw new HdError(
        `Cannot start ${what}: neither it nor its image ${s.image} names a command`,
        'add command = ["program", "arg"] to the service',
      );
    }
    const user = resolveUser(
      s.user ?? cfg.User ?? "",
      parsePasswd(readInRoot(root, "/etc/passwd")),
      parseGroup(readInRoot(root, "/etc/group")),
      what,
    );
    const cwd = checkSandboxPath(
      s.workdir !== "." ? s.workdir : cfg.WorkingDir || "/",
      `[services.${s.name}].workdir`,
    );
    mkdirInRoot(root, cwd);
    const mounts = serviceMounts(this.#store, this.#spec, s, root);
    const env: Record<string, string> = { ...imageEnvOf(cfg), ...s.env };
    env.HOME ??= user.home;
    env.HD_ENV = this.#spec.environment.name;
    return {
      root,
      argv,
      env,
      cwd,
      binds: mounts.binds,
      tmpfs: mounts.tmpfs,
      project: this.#spec.dir,
      runDir: envRunDir(this.#spec),
      kind: "run",
      network: "host",
      caCerts: hostCaWanted(),
      hostname: s.name.toLowerCase().replace(/[^a-z0-9-]/g, "-").slice(0, 63) || "hd",
      user: { uid: user.uid, gid: user.gid, additionalGids: user.additionalGids },
    };
  }

  /** Mounts (or reuses) the root of service `name` on the layers of `img`; its host path. */
  #mount(name: string, img: PulledImage): string {
    const dir = serviceBundle(this.#spec, name);
    Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const lm = this.#layerMount;
    const lowers = [...img.layers].reverse().map((l) =>
      lm ? `${lm.dir}/${l.tree}` : materializeLayer(this.#store, l.tree).dir
    );
    const server = lm ? `${lm.root}:${lm.pid}` : undefined;
    const target = `${dir}/root`;
    const state = `${dir}/root.json`;
    const prev = readState(state);
    if (prev && prev.lowers.join(":") === lowers.join(":") && prev.server === server) {
      if (prev.mode === "overlay" ? isMountPoint(target) : exists(target)) return target;
    }
    if (prev) unmountRootfs({ mode: prev.mode, target });
    else if (isMountPoint(target)) unmountRootfs({ mode: "overlay", target });
    const r = mountRootfs({ lowers, upper: `${dir}/upper`, work: `${dir}/work`, target });
    const tmp = `${state}.${Deno.pid}.tmp`;
    Deno.writeTextFileSync(tmp, JSON.stringify({ lowers, mode: r.mode, server }));
    Deno.renameSync(tmp, state);
    return target;
  }
}

function exists(p: string): boolean {
  try {
    Deno.lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

/** The service's own command line as the supervisor shows it. */
function shownCommand(s: ServiceSpec): string {
  const argv = imageArgv({ entrypoint: s.entrypoint, argv: s.argv }, {});
  return argv ? (s.argv || s.entrypoint ? argv.join(" ") : s.command) : `(${s.image}'s command)`;
}

/**
 * After the services stopped (`hd down`): unmounts each image service's root and discards its
 * writable layer (the container's own files; volumes are kept elsewhere). Returns the names done.
 */
export function releaseImageServices(spec: EnvSpec): string[] {
  const done: string[] = [];
  let entries: Deno.DirEntry[] = [];
  const base = `${spec.dir}/.hd/sandbox/services`;
  try {
    entries = [...Deno.readDirSync(base)];
  } catch {
    return done;
  }
  for (const e of entries) {
    if (!e.isDirectory) continue;
    const dir = `${base}/${e.name}`;
    const st = readState(`${dir}/root.json`);
    if (!st) continue;
    unmountRootfs({ mode: st.mode, target: `${dir}/root` });
    if (st.mode === "overlay" && isMountPoint(`${dir}/root`)) continue;
    for (const p of ["root.json", "upper", "work", "root"]) {
      try {
        Deno.removeSync(`${dir}/${p}`, { recursive: true });
      } catch { /* gone */ }
    }
    done.push(e.name);
  }
  return done;
}

/**
 * After {@link releaseImageServices}: stops the image services' lazy layer server once no image
 * service's root is mounted on it (with `store`, through the mount registry). True when stopped.
 */
export async function releaseImageLayers(spec: EnvSpec, store: Store | null): Promise<boolean> {
  const lm = imageLayersDir(spec);
  if (!isMountPoint(lm) && !(store && layerMountLive(store, lm))) return false;
  const base = `${spec.dir}/.hd/sandbox/services`;
  try {
    for (const e of Deno.readDirSync(base)) {
      if (e.isDirectory && isMountPoint(`${base}/${e.name}/root`)) return false;
    }
  } catch { /* no services dir */ }
  await stopLayerMount(store, lm);
  return !isMountPoint(lm);
}
