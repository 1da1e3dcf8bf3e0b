/**
 * The apt provider: `apt = ["curl", "jq=1.6-2.1+deb12u3"]` resolved against a Debian repository's
 * Packages index into Package nodes — name, version, artifact `sha256:<hex>` of the .deb and its
 * URL — with the closure of Depends/Pre-Depends (the first alternative the index has). The
 * repository is `$HD_APT_SOURCE`: `URL SUITE COMPONENT` (default
 * `http://deb.debian.org/debian bookworm main`) or `URL ./` for a flat repository (e.g. one made
 * by dpkg-scanpackages and served on 127.0.0.1). src/runtime/apt_layer.ts downloads, verifies and
 * unpacks the packages into a layer.
 *
 * Importing this module registers the provider.
 *
 * @example
 * ```ts
 * import { parsePackagesIndex, aptProvider } from "./apt.ts";
 * const idx = parsePackagesIndex("Package: jq\nVersion: 1.6\nFilename: pool/j/jq.deb\n");
 * ```
 * @module
 */
import { HdError } from "../../sys/errors.ts";
import type { DependencySpec } from "../types.ts";
import { parsePackagePin, type Provider, type ResolvedPackage } from "./provider.ts";

/** One stanza of a Packages index (the fields hd reads). */
export interface AptStanza {
  package: string;
  version: string;
  architecture: string;
  filename: string;
  size: number;
  sha256: string;
  depends: string[][];
  fields: Record<string, string>;
}

/** Where packages come from. */
export interface AptSource {
  url: string;
  /** Suite and component, or null for a flat repository (`URL ./`). */
  suite: string | null;
  component: string | null;
}

/** The repository of `$HD_APT_SOURCE` (or Debian bookworm main). */
export function aptSource(text = Deno.env.get("HD_APT_SOURCE") ?? ""): AptSource {
  const parts = text.trim().split(/\s+/).filter(Boolean);
  if (parts.length === 0) {
    return { url: "http://deb.debian.org/debian", suite: "bookworm", component: "main" };
  }
  const url = parts[0].replace(/\/+$/, "");
  if (parts[1] === "./" || parts[1] === "." || parts.length === 1) {
    return { url, suite: null, component: null };
  }
  return { url, suite: parts[1], component: parts[2] ?? "main" };
}

/** The Debian architecture of this host. */
export function debArch(): string {
  return ({ x86_64: "amd64", aarch64: "arm64" } as Record<string, string>)[Deno.build.arch] ??
    Deno.build.arch;
}

function parseDepends(v: string | undefined): string[][] {
  if (!v) return [];
  return v.split(",").map((alt) =>
    alt.split("|").map((a) => a.trim().replace(/\s*\(.*\)/, "").replace(/:any$/, "")).filter(
      Boolean,
    )
  ).filter((a) => a.length > 0);
}

/** Parses a Packages index into stanzas by package name (the highest version listed last wins). */
export function parsePackagesIndex(text: string): Map<string, AptStanza> {
  const out = new Map<string, AptStanza>();
  for (const block of text.split(/\n\s*\n/)) {
    const fields: Record<string, string> = {};
    let key = "";
    for (const line of block.split("\n")) {
      if (/^\s/.test(line) && key) fields[key] += "\n" + line.trim();
      else {
        const i = line.indexOf(":");
        if (i <= 0) continue;
        key = line.slice(0, i).toLowerCase();
        fields[key] = line.slice(i + 1).trim();
      }
    }
    if (!fields.package || !fields.version || !fields.filename) continue;
    out.set(fields.package, {
      package: fields.package,
      version: fields.version,
      architecture: fields.architecture ?? "all",
      filename: fields.filename,
      size: Number(fields.size ?? 0),
      sha256: (fields.sha256 ?? "").toLowerCase(),
      depends: [...parseDepends(fields["pre-depends"]), ...parseDepends(fields.depends)],
      fields,
    });
  }
  return out;
}

/** URL of the Packages index of `src` for `arch`. */
export function indexUrl(src: AptSource, arch = debArch()): string {
  return src.suite === null
    ? `${src.url}/Packages`
    : `${src.url}/dists/${src.suite}/${src.component}/binary-${arch}/Packages.gz`;
}

async function fetchIndex(src: AptSource): Promise<{ text: string; url: string }> {
  const urls = [indexUrl(src)];
  if (src.suite === null) urls.unshift(`${src.url}/Packages.gz`);
  let why = "";
  for (const url of urls) {
    try {
      const r = await fetch(url);
      if (!r.ok) {
        why = `HTTP ${r.status} for ${url}`;
        await r.arrayBuffer().catch(() => {}); // drained, so the connection can be reused
        continue;
      }
      const body = url.endsWith(".gz")
        ? r.body!.pipeThrough(new DecompressionStream("gzip"))
        : r.body!;
      return { text: await new Response(body).text(), url };
    } catch (e) {
      const cause = (e as Error).cause as Error | undefined;
      why = `${url}: ${(e as Error).message}${cause?.message ? ` (${cause.message})` : ""}`;
    }
  }
  throw new HdError(
    `Cannot resolve dependency "apt": cannot fetch the Packages index (${why})`,
    'check $HD_APT_SOURCE ("URL SUITE COMPONENT" or "URL ./") and the network',
  );
}

/**
 * The closure of `wanted` (names with optional pinned versions) over `index`: each package and
 * the first alternative of each dependency that the index has. Throws when a wanted package is
 * missing or its pinned version differs.
 */
export function resolveClosure(
  index: Map<string, AptStanza>,
  wanted: { name: string; version: string | null }[],
): AptStanza[] {
  const out = new Map<string, AptStanza>();
  const visit = (name: string) => {
    if (out.has(name)) return;
    const s = index.get(name);
    if (!s) return;
    out.set(name, s);
    for (const alts of s.depends) {
      const hit = alts.find((a) => index.has(a));
      if (hit) visit(hit);
    }
  };
  for (const w of wanted) {
    const s = index.get(w.name);
    if (!s) {
      throw new HdError(
        `Cannot resolve dependency "apt": no package "${w.name}" in the repository`,
        "check the name (`apt-cache search`), or $HD_APT_SOURCE",
      );
    }
    if (w.version !== null && s.version !== w.version) {
      throw new HdError(
        `Cannot resolve dependency "apt": ${w.name} ${w.version} is not in the repository ` +
          `(it has ${s.version})`,
        `pin ${w.name}=${s.version}, or drop the pin`,
      );
    }
    visit(w.name);
  }
  return [...out.values()].sort((a, b) => (a.package < b.package ? -1 : 1));
}

/** The apt provider. */
export const aptProvider: Provider = {
  name: "apt",
  summary: 'Debian packages: apt = ["curl", "jq=1.6-2.1+deb12u3"] (from $HD_APT_SOURCE)',
  forms: ["list"],
  async resolve(dep: DependencySpec) {
    if (dep.form !== "list") {
      throw new HdError(
        `Cannot resolve dependency "apt": it takes only the list form`,
        'write apt = ["curl", "jq"]',
      );
    }
    const src = aptSource();
    const { text } = await fetchIndex(src);
    const index = parsePackagesIndex(text);
    const closure = resolveClosure(index, dep.packages.map(parsePackagePin));
    const packages: ResolvedPackage[] = closure.map((s) => ({
      node: {
        type: "package",
        provider: "apt",
        name: s.package,
        version: s.version,
        artifact: `sha256:${s.sha256}`,
        resolved: `${src.url}/${s.filename.replace(/^\.\//, "")}`,
      },
    }));
    // the index is not a project file: hd.lock pins what it resolved until [dependencies] changes
    return { packages, inputs: [] };
  },
};
