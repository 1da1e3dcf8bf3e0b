/**
 * hd's V8 flags (src/sys/v8_flags.ts) are the same on every command line that starts hd: the
 * deno.json tasks that run cli.ts, scripts/example.sh, and `deno compile` in scripts/compile.ts;
 * and V8 accepts them (a misspelt flag makes deno refuse to start).
 */
import { assert, assertEquals } from "../_assert.ts";
import { REPO } from "../_helpers.ts";
import { V8_FLAGS, v8FlagsArg } from "../../src/sys/v8_flags.ts";

/** The `deno run|install|compile` command lines of a text that start cli.ts. */
function hdCommandLines(text: string): string[] {
  return text.split(/\n|&&/).filter((l) => /deno (run|install)\b[^;|]*\bcli\.ts\b/.test(l));
}

Deno.test("every deno.json task that starts cli.ts carries hd's V8 flags", () => {
  const tasks = JSON.parse(Deno.readTextFileSync(`${REPO}/deno.json`)).tasks as Record<
    string,
    string
  >;
  const starting = Object.entries(tasks).filter(([, cmd]) => hdCommandLines(cmd).length > 0);
  assertEquals(starting.map(([name]) => name).sort(), ["hd", "install", "up"]);
  for (const [name, cmd] of starting) {
    assert(cmd.includes(v8FlagsArg()), `task ${name} lacks ${v8FlagsArg()}: ${cmd}`);
  }
});

Deno.test("scripts/example.sh and scripts/compile.ts start hd with its V8 flags", () => {
  const example = hdCommandLines(Deno.readTextFileSync(`${REPO}/scripts/example.sh`));
  assertEquals(example.length, 2); // deno install -g, then deno run … up
  for (const l of example) assert(l.includes(v8FlagsArg()), `example.sh: ${l}`);
  assert(
    /^\s*v8FlagsArg\(\),/m.test(Deno.readTextFileSync(`${REPO}/scripts/compile.ts`)),
    "scripts/compile.ts passes v8FlagsArg() to deno compile",
  );
});

Deno.test("V8 accepts hd's flags", async () => {
  assert(V8_FLAGS.length > 0);
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", v8FlagsArg(), "console.log('ok')"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const err = new TextDecoder().decode(out.stderr);
  assertEquals([out.code, new TextDecoder().decode(out.stdout).trim()], [0, "ok"], err);
  assert(!/did not recognize/.test(err), err);
});

Deno.test("hd's own children under deno run (supervisor, mount server) carry the flags too", async () => {
  const { entryArgs } = await import("../../src/cli/up_early.ts");
  const { hdArgv } = await import("../../src/mount/spawn.ts");
  // this test runs under deno: both start `deno run … cli.ts` and must pass the flags
  assert(entryArgs().includes(v8FlagsArg()), `supervisor: ${entryArgs().join(" ")}`);
  assert(hdArgv().includes(v8FlagsArg()), `mount server: ${hdArgv().join(" ")}`);
});
