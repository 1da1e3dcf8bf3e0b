/**
 * The registry of dependency providers. npm and apt are built in; other modules add theirs with
 * {@link registerProvider}. Resolving an entry whose provider is missing fails with a clear
 * `Cannot resolve dependency "apt": the apt provider is not available yet`.
 *
 * @example
 * ```ts
 * import { resolveDependency } from "./registry.ts";
 * import type { EnvSpec } from "../types.ts";
 * declare const spec: EnvSpec;
 * const { packages } = await resolveDependency(spec.dependencies[0], { spec, dir: spec.dir });
 * ```
 * @module
 */
import { HdError } from "../../sys/errors.ts";
import { displayPath } from "../parse.ts";
import { didYouMean } from "../suggest.ts";
import type { DependencySpec } from "../types.ts";
import { aptProvider } from "./apt.ts";
import { npmProvider } from "./npm.ts";
import type { Provider, ProviderContext, Resolution } from "./provider.ts";

/** Provider names hd knows of, registered or planned, for messages about typos. */
export const KNOWN_PROVIDER_NAMES: readonly string[] = [
  "apt",
  "npm",
  "node",
  "pip",
  "python",
  "cargo",
  "go",
];

const providers = new Map<string, Provider>([
  [npmProvider.name, npmProvider],
  [aptProvider.name, aptProvider],
]);

/** Adds (or replaces) a provider. */
export function registerProvider(p: Provider): void {
  providers.set(p.name, p);
}

/** The provider called `name`, or undefined. */
export function getProvider(name: string): Provider | undefined {
  return providers.get(name);
}

/** Names of the registered providers, sorted. */
export function providerNames(): string[] {
  return [...providers.keys()].sort();
}

/** Where an entry sits in hd.toml, for messages: ` (hd.toml:7:1)` or "". */
export function entryAt(dep: DependencySpec): string {
  return dep.at ? ` (${displayPath(dep.at.file)}:${dep.at.line}:${dep.at.column})` : "";
}

/** Resolves one [dependencies] entry with its provider. */
export async function resolveDependency(
  dep: DependencySpec,
  ctx: ProviderContext,
): Promise<Resolution> {
  const p = providers.get(dep.provider);
  if (!p) {
    const known = new Set([...KNOWN_PROVIDER_NAMES, ...providers.keys()]);
    if (known.has(dep.provider)) {
      throw new HdError(
        `Cannot resolve dependency "${dep.provider}"${
          entryAt(dep)
        }: the ${dep.provider} provider is not available yet`,
        `available providers: ${
          providerNames().join(", ")
        }; remove the entry or install the packages in a build step`,
      );
    }
    const guess = didYouMean(dep.provider, known);
    throw new HdError(
      `Cannot resolve dependency "${dep.provider}"${
        entryAt(dep)
      }: no provider is called "${dep.provider}"`,
      guess
        ? `did you mean "${guess}"? (available: ${providerNames().join(", ")})`
        : `available providers: ${providerNames().join(", ")}`,
    );
  }
  if (!p.forms.includes(dep.form)) {
    throw new HdError(
      `Cannot resolve dependency "${dep.provider}"${
        entryAt(dep)
      }: the ${p.name} provider does not take the ${dep.form} form`,
      p.name === "npm"
        ? 'write npm = { file = "package-lock.json" }'
        : `${p.name} takes: ${p.forms.join(", ")}`,
    );
  }
  return await p.resolve(dep, ctx);
}
