/**
 * `hd up -d` starts its supervisor before the CLI loads (src/cli/up_early.ts): which command
 * lines take that path (a table of earlyPlan), and, end to end, that the supervisor started early
 * is the one that runs (one supervisor, whose output the CLI shows), while a bad command line
 * starts nothing.
 */
import { assert, assertEquals } from "../_assert.ts";
import { downAtEnd, hd, skipUnless, tempDir, testIf } from "../_helpers.ts";
import { earlyPlan, foregroundArgs, supervisorArgs } from "../../src/cli/up_early.ts";

Deno.test("earlyPlan: only `hd up -d` command lines it reads as parseArgs does", () => {
  const table: [string[], string[] | null][] = [
    [["up", "-d"], ["up", "--supervise"]],
    [["up", "--detach", "web"], ["up", "--supervise", "web"]],
    [["up", "web", "-d", "api"], ["up", "--supervise", "web", "api"]],
    [
      ["up", "-d", "--profile", "a", "--file", "x.toml", "--profile", "b", "--push-cache"],
      ["up", "--supervise", "--file", "x.toml", "--profile", "a", "--profile", "b", "--push-cache"],
    ],
    [["up", "-d", "--cache", "off", "--wait", "--json"], ["up", "--supervise", "--cache", "off"]],
    [["up", "-d", "--wait", "--wait-timeout", "90s"], ["up", "--supervise"]],
    [["up"], null], // the foreground has no supervisor
    [["up", "web"], null],
    [["down", "-d"], null],
    [["up", "-d", "--supervise"], null], // the supervisor itself
    [["up", "-d", "--help"], null],
    [["up", "-dh"], null],
    [["up", "-d", "--file=x.toml"], null],
    [["up", "-d", "--file"], null],
    [["up", "-d", "--file", "-x"], null],
    [["up", "-d", "--file", "a", "--file", "b"], null],
    [["up", "-d", "--wait-timeout", "soon"], null], // a usage error must start nothing
    [["up", "-d", "--wait-timeout", "2h"], null],
    [["up", "-d", "--", "web"], null],
    [["up", "-d", "--bogus"], null],
  ];
  for (const [argv, want] of table) {
    assertEquals(earlyPlan(argv)?.args ?? null, want, argv.join(" "));
  }
  assertEquals(earlyPlan(["up", "-d", "--store", "/s"])?.store, "/s");
  assertEquals(earlyPlan(["up", "-d", "--file", "p/hd.toml"])?.file, "p/hd.toml");
  assertEquals(
    supervisorArgs({ profiles: [], pushCache: false, positionals: [] }),
    ["up", "--supervise"],
  );
});

Deno.test("foregroundArgs: a foreground `hd up` with nothing else, or with --file only", () => {
  const table: [string[], string[] | null][] = [
    [["up"], ["up", "--supervise"]],
    [["up", "--file", "p/hd.toml"], ["up", "--supervise", "--file", "p/hd.toml"]],
    [["up", "-d"], null], // the supervisor starts them
    [["up", "web"], null],
    [["up", "--json"], null],
    [["up", "--file", "-x"], null],
    [["up", "--file=p/hd.toml"], null],
    [["up", "--profile", "a"], null],
    [["down"], null],
  ];
  for (const [argv, want] of table) assertEquals(foregroundArgs(argv), want, argv.join(" "));
});

const NEEDS = skipUnless({ commands: ["setsid", "sh"] });

testIf(
  NEEDS,
  "hd up -d: the supervisor started early runs the project; a usage error starts none",
  async () => {
    using tmp = tempDir();
    using store = tempDir();
    const opts = { cwd: tmp.path, store: store.path };
    Deno.writeTextFileSync(
      `${tmp.path}/hd.toml`,
      `[environment]\nname = "early"\n\n[services.idle]\ncommand = "sleep 600"\n`,
    );
    await using _down = downAtEnd(opts);
    // a bad --wait-timeout: refused before anything starts (no supervisor, no log)
    const bad = await hd(["up", "-d", "--wait-timeout", "soon"], opts);
    assertEquals(bad.code, 2, bad.stderr);
    assert(!exists(`${tmp.path}/.hd/up.json`), "a usage error must start no supervisor");

    const up = await hd(["up", "-d"], opts);
    assertEquals(up.code, 0, up.stderr);
    const state = JSON.parse(Deno.readTextFileSync(`${tmp.path}/.hd/up.json`));
    assert(up.stdout.includes(`supervisor pid ${state.pid}`), up.stdout);
    // one supervisor ran: the log has one start of the session (its root line), no refusal
    const log = Deno.readTextFileSync(`${tmp.path}/.hd/logs/hd.log`);
    assertEquals(log.match(/hd +\| root /g)?.length, 1, log);
    assert(!log.includes("already running"), log);
    // the CLI showed the supervisor's own lines (written from the log offset taken before it ran)
    assert(/hd +\| root /.test(up.stderr + up.stdout), up.stderr);

    // up again: reconciles with the running one (up.json exists: no early start)
    const again = await hd(["up", "-d"], opts);
    assertEquals(again.code, 0, again.stderr);
    assert(again.stdout.includes("up to date"), again.stdout);
    const log2 = Deno.readTextFileSync(`${tmp.path}/.hd/logs/hd.log`);
    assertEquals(log2.match(/hd +\| root /g)?.length, 1, log2);
  },
);

function exists(p: string): boolean {
  try {
    Deno.lstatSync(p);
    return true;
  } catch {
    return false;
  }
}
