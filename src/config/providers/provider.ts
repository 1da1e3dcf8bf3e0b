/**
 * The interface every dependency provider implements. A provider turns one [dependencies] entry
 * of hd.toml into resolved packages (Package nodes) and names the files it read, so that hd.lock
 * can record their hashes and notice when they change.
 *
 * @example
 * ```ts
 * import type { Provider } from "./provider.ts";
 * export const none: Provider = {
 *   name: "none", summary: "resolves nothing", forms: ["list"],
 *   resolve: () => Promise.resolve({ packages: [], inputs: [] }),
 * };
 * ```
 * @module
 */
import type { PackageNode } from "../../dag/node.ts";
import type { DependencySpec, EnvSpec } from "../types.ts";

/** One resolved package and where it sits in its ecosystem's layout. */
export interface ResolvedPackage {
  /** The Package node (provider, name, version, artifact, resolved URL). */
  node: PackageNode;
  /** Install location within the provider's layout, when it has one (`node_modules/a`). */
  path?: string;
  /** Only needed for development (npm `dev`). */
  dev?: boolean;
  /** Optional dependency (npm `optional`). */
  optional?: boolean;
}

/** A file a provider read, with the BLAKE3 hex of its bytes. */
export interface ResolutionInput {
  /** Path relative to the project directory. */
  path: string;
  hash: string;
}

/** What a provider resolved for one [dependencies] entry. */
export interface Resolution {
  packages: ResolvedPackage[];
  inputs: ResolutionInput[];
}

/** What a provider may look at. */
export interface ProviderContext {
  spec: EnvSpec;
  /** Absolute project directory. */
  dir: string;
}

/** A dependency provider (npm, apt, …). */
export interface Provider {
  /** The key in [dependencies]. */
  name: string;
  /** One line for messages and docs. */
  summary: string;
  /** The forms of [dependencies] entries it accepts. */
  forms: readonly DependencySpec["form"][];
  /** Resolves an entry; throws HdError `Cannot resolve dependency "…": …` on failure. */
  resolve(dep: DependencySpec, ctx: ProviderContext): Promise<Resolution>;
}

/**
 * Splits a list-form package (`curl`, `git=1:2.39.5-0+deb12u1`, `left-pad@1.3.0`,
 * `@scope/pkg@2.0.0`) into its name and pinned version (null when unpinned).
 */
export function parsePackagePin(text: string): { name: string; version: string | null } {
  const eq = text.indexOf("=");
  if (eq > 0) return { name: text.slice(0, eq), version: text.slice(eq + 1) || null };
  const at = text.indexOf("@", 1); // a leading @ is an npm scope, not a separator
  if (at > 0) return { name: text.slice(0, at), version: text.slice(at + 1) || null };
  return { name: text, version: null };
}

/**
 * The largest dependency file (a lockfile) hd reads to resolve packages or to tell whether hd.lock
 * is current: a project's file is untrusted, and one named by mistake (or a link to a device) must
 * not be read without end.
 */
export const INPUT_FILE_MAX = 256 << 20;
