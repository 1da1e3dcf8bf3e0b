/**
 * `volumes` and `tmpfs` of a `[services.NAME]` table, and the top-level `[volumes.NAME]` tables:
 * compose's short form (`"data:/var/lib/x"`, `"./src:/app/src:ro"`, `"/cache"`) and long form
 * (`{ type = "volume" | "bind" | "tmpfs", source, target, read_only }`), checked when hd.toml is
 * read: a volume name is `[a-z0-9][a-z0-9_.-]*`; a bind source is a path of the project (relative,
 * no `..`, the path rules of docs/hdtoml.md); a target is absolute, normalized, not `/` and not in
 * /proc, /sys or /dev; two mounts of one service never share a target. The runtime meaning is in
 * src/runtime/volumes.ts.
 *
 * @example
 * ```ts
 * import { parseVolume } from "./volume_keys.ts";
 * declare const v: import("./volume_keys.ts").VolumeReader;
 * parseVolume(v, "services.db.volumes[0]", "data:/var/lib/postgresql/data");
 * // { type: "volume", source: "data", target: "/var/lib/postgresql/data", read_only: false }
 * ```
 * @module
 */
import type { KeyReader } from "./service_keys.ts";
import type { VolumeMount } from "./types.ts";

/** What parse.ts's validator offers here (errors located at a key; project paths checked). */
export interface VolumeReader extends KeyReader {
  relPath(path: string, v: unknown, root?: boolean): string;
}

/** The keys of [services.NAME] this module reads. */
export const VOLUME_KEYS = ["volumes", "tmpfs"] as const;

/** A named volume's name (as the design's names). */
export const VOLUME_NAME = /^[a-z0-9][a-z0-9_.-]*$/;

/** Mode words of the short form that hd accepts; all but `ro`/`rw`/`nocopy` change nothing here. */
const MODES = ["ro", "rw", "nocopy", "z", "Z", "cached", "delegated", "consistent"];

/** Paths of the container hd itself mounts (and masks): no volume goes there. */
const RESERVED = ["/proc", "/sys", "/dev"];

/** Checks a mount target: absolute, normalized, not `/`, not below /proc, /sys or /dev. */
export function volumeTarget(v: KeyReader, path: string, t: string): string {
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x1f\x7f]/.test(t)) {
    v.fail(path, `target ${JSON.stringify(t)} has a control character`);
  }
  if (!t.startsWith("/")) {
    v.fail(path, `target "${t}" must be an absolute path inside the container`, `e.g. "/${t}"`);
  }
  const parts = t.split("/").filter((c) => c !== "" && c !== ".");
  if (parts.includes("..")) v.fail(path, `target "${t}" has a ".." component`, 'remove the ".."');
  const n = `/${parts.join("/")}`;
  if (n === "/") v.fail(path, "a volume cannot be mounted on / itself", "name a directory");
  const r = RESERVED.find((x) => n === x || n.startsWith(`${x}/`));
  if (r) {
    v.fail(path, `target "${n}" is inside ${r}, which the sandbox mounts itself`, "pick another");
  }
  return n;
}

/** One entry of `volumes` (short string or long table) at `path`. */
export function parseVolume(v: VolumeReader, path: string, item: unknown): VolumeMount {
  if (typeof item === "string") return shortForm(v, path, item);
  if (typeof item !== "object" || item === null || Array.isArray(item)) {
    v.fail(
      path,
      "a volume is a string or a table",
      'write "data:/var/lib/x", "./src:/app/src:ro" or { type = "volume", source, target }',
    );
  }
  const t = item as Record<string, unknown>;
  const allowed = ["type", "source", "target", "read_only"];
  for (const k of Object.keys(t)) {
    if (!allowed.includes(k)) {
      v.fail(`${path}.${k}`, `unknown key "${k}" in a volume`, `valid keys: ${allowed.join(", ")}`);
    }
  }
  const type = t.type === undefined ? "volume" : v.str(`${path}.type`, t.type);
  if (type !== "volume" && type !== "bind" && type !== "tmpfs") {
    v.fail(`${path}.type`, `type must be "volume", "bind" or "tmpfs", not "${type}"`);
  }
  if (t.target === undefined) v.fail(path, "a volume needs a target", 'add target = "/path"');
  const target = volumeTarget(v, `${path}.target`, v.str(`${path}.target`, t.target));
  if (t.read_only !== undefined && typeof t.read_only !== "boolean") {
    v.fail(`${path}.read_only`, "read_only must be true or false", "write read_only = true");
  }
  const read_only = t.read_only === true;
  if (type === "tmpfs") {
    if (t.source !== undefined) v.fail(`${path}.source`, "a tmpfs has no source");
    return { type, source: "", target, read_only };
  }
  if (t.source === undefined) {
    if (type === "bind") v.fail(path, "a bind mount needs a source", 'add source = "./dir"');
    return { type: "volume", source: "", target, read_only }; // anonymous
  }
  if (type === "bind") {
    return { type, source: v.relPath(`${path}.source`, t.source, true), target, read_only };
  }
  return {
    type,
    source: volumeName(v, `${path}.source`, v.str(`${path}.source`, t.source)),
    target,
    read_only,
  };
}

function volumeName(v: KeyReader, path: string, name: string): string {
  if (!VOLUME_NAME.test(name)) {
    v.fail(
      path,
      `volume name "${name}" is not valid`,
      "use lower-case letters, digits, '.', '_' and '-'; a bind mount starts with ./",
    );
  }
  return name;
}

function shortForm(v: VolumeReader, path: string, s: string): VolumeMount {
  const parts = s.split(":");
  if (parts.length === 1) {
    // "/path": an anonymous volume (source ""): the path stays in the container's own files
    return { type: "volume", source: "", target: volumeTarget(v, path, s), read_only: false };
  }
  if (parts.length > 3) {
    v.fail(path, `volume "${s}" has too many ":"`, 'write "SOURCE:TARGET" or "SOURCE:TARGET:ro"');
  }
  const [src, dst, mode = "rw"] = parts;
  const modes = mode.split(",");
  for (const m of modes) {
    if (!MODES.includes(m)) {
      v.fail(path, `volume mode "${m}" is not known`, `use ro or rw (${MODES.join(", ")})`);
    }
  }
  const target = volumeTarget(v, path, dst);
  const read_only = modes.includes("ro");
  const bind = src.startsWith(".") || src.startsWith("/") || src.startsWith("~");
  if (bind) return { type: "bind", source: v.relPath(path, src, true), target, read_only };
  return {
    type: "volume",
    source: volumeName(v, path, src),
    target,
    read_only,
    ...(modes.includes("nocopy") ? { nocopy: true } : {}),
  };
}

/**
 * `volumes` and `tmpfs` of service table `t` (only when present): the mounts in order, tmpfs
 * last. `sandboxed` says whether the service runs in a sandbox (an image, or the env's base).
 */
export function serviceVolumes(
  v: VolumeReader,
  path: string,
  t: Record<string, unknown>,
  sandboxed: boolean,
): { volumes?: VolumeMount[] } {
  if (t.volumes === undefined && t.tmpfs === undefined) return {};
  const key = t.volumes !== undefined ? "volumes" : "tmpfs";
  if (!sandboxed) {
    v.fail(
      `${path}.${key}`,
      `${key} needs a sandbox: the service runs on the host`,
      'give the service an image (image = "…") or the environment a base',
      true,
    );
  }
  const out: VolumeMount[] = [];
  if (t.volumes !== undefined) {
    if (!Array.isArray(t.volumes)) {
      v.fail(`${path}.volumes`, "volumes must be an array", 'write volumes = ["data:/var/lib/x"]');
    }
    t.volumes.forEach((item, i) => out.push(parseVolume(v, `${path}.volumes[${i}]`, item)));
  }
  if (t.tmpfs !== undefined) {
    const list = typeof t.tmpfs === "string" ? [t.tmpfs] : t.tmpfs;
    if (!Array.isArray(list)) v.fail(`${path}.tmpfs`, "tmpfs must be an array of paths");
    list.forEach((p, i) => {
      const at = `${path}.tmpfs[${i}]`;
      out.push({
        type: "tmpfs",
        source: "",
        target: volumeTarget(v, at, v.str(at, p)),
        read_only: false,
      });
    });
  }
  const seen = new Map<string, number>();
  out.forEach((m, i) => {
    if (seen.has(m.target)) {
      v.fail(
        `${path}.${key}`,
        `two volumes of the service mount ${m.target} (entries ${seen.get(m.target)! + 1} and ${
          i + 1
        })`,
        "keep one of them",
      );
    }
    seen.set(m.target, i);
  });
  return { volumes: out };
}

/** The top-level `[volumes]` table: `[volumes.NAME]` with no keys yet; returns the names. */
export function declaredVolumes(v: KeyReader, doc: unknown): string[] {
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    v.fail("volumes", "[volumes] must be a table of [volumes.NAME] tables");
  }
  const names: string[] = [];
  for (const [name, t] of Object.entries(doc as Record<string, unknown>)) {
    volumeName(v, `volumes.${name}`, name);
    if (typeof t !== "object" || t === null || Array.isArray(t)) {
      v.fail(`volumes.${name}`, `[volumes.${name}] must be a table`, `write [volumes.${name}]`);
    }
    for (const k of Object.keys(t as Record<string, unknown>)) {
      v.fail(
        `volumes.${name}.${k}`,
        `unknown key "${k}" in [volumes.${name}]`,
        "it takes no keys yet",
        true,
      );
    }
    names.push(name);
  }
  return names;
}
