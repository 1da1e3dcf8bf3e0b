/**
 * The V8 flags hd runs with: one list for every way hd is started (the deno.json tasks `hd`,
 * `up` and `install`, scripts/example.sh's `deno install`, and `deno compile` in
 * scripts/compile.ts, which embeds them in the binary); tests/cli/v8_flags_test.ts checks that
 * they all say the same.
 *
 * `--max-semi-space-size=1` (MiB): V8 grows the young generation of a busy isolate to 16 MiB per
 * semi-space (three of them committed), and a cold `hd cas add` of a large tree keeps its main
 * isolate that busy: ~50 MiB of its peak RSS was an empty nursery. With 1 MiB semi-spaces the
 * scavenges are more frequent but as cheap (their cost is what survives, not the nursery size);
 * measured on a cold add of 100k synthetic files: peak RSS 186 MiB vs 249, CPU time within the
 * noise (bench/cas.ts, docs/bench.md). A process that allocates little never grows its nursery
 * past 1 MiB anyway, so start-up is unchanged.
 *
 * Flags are read by V8 when an isolate is made: they cannot be set from inside a running hd
 * (node:v8's setFlagsFromString changes neither the main isolate's heap nor a new worker's).
 * @module
 */

/** The V8 flags of every hd process, in `--v8-flags=` form. */
export const V8_FLAGS: readonly string[] = ["--max-semi-space-size=1"];

/** `--v8-flags=…` for a `deno run`, `deno install` or `deno compile` command line. */
export function v8FlagsArg(): string {
  return `--v8-flags=${V8_FLAGS.join(",")}`;
}
