/**
 * The V8 flags hd runs with: one list for every way hd is started (the deno.json tasks `hd`,
 * `up` and `install`, scripts/example.sh's `deno install`, and `deno compile` in
 * scripts/compile.ts, which embeds them in the binary); tests/sys/v8_flags_test.ts checks that
 * they all say the same.
 *
 * `--max-semi-space-size=1` (MiB): V8 grows the young generation of an isolate that allocates
 * fast and keeps much of it (the main thread of a cold `hd cas add`) to its default maximum; at
 * 100k files the main isolate committed ~100 MiB of heap for a 22–45 MiB live set, most of the
 * difference an empty nursery. With 1 MiB semi-spaces scavenges are more frequent but each is
 * cheaper (its cost is what survives, not the nursery's size): a cold add of 100k synthetic files
 * peaks at ~180 MiB instead of ~260, CPU time within the noise (bench/cas.ts). A process that
 * allocates little never grows its nursery past 1 MiB anyway: start-up is unchanged.
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
