/**
 * `hd logs`: lines carry their time; several services interleave in time order; --tail, -t, and
 * -f that ends with `hd down`.
 */
import { assert, assertEquals } from "../_assert.ts";
import { downAtEnd, hd, REPO, skipUnless, tempDir, testIf } from "../_helpers.ts";
import { lastEntries, mergeLogs, parseLogLine, stampLine } from "../../src/services/logs.ts";
import { waitFor } from "./_util.ts";

const NEEDS = skipUnless({ commands: ["setsid"] });

Deno.test("logs: stamped lines parse back; unstamped ones have no time (table)", () => {
  const t = Date.parse("2026-11-30T20:00:00.250Z");
  const cases: [string, number | null, string][] = [
    [stampLine(t, "hello"), t, "hello"],
    [stampLine(t, ""), t, ""],
    [stampLine(t, "2026-01-01T00:00:00.000Z inner"), t, "2026-01-01T00:00:00.000Z inner"],
    ["plain line", null, "plain line"],
    ["2026-11-30T20:00:00Z no ms", null, "2026-11-30T20:00:00Z no ms"],
    ["2026-13-45T99:00:00.000Z bad date", null, "2026-13-45T99:00:00.000Z bad date"],
  ];
  for (const [text, time, line] of cases) assertEquals(parseLogLine(text), { t: time, line }, text);
});

Deno.test("logs: merge in time order, stable, untimed lines follow their predecessor (table)", () => {
  const e = (t: number | null, line: string) => ({ t, line });
  const cases: [
    string,
    { source: string; entries: { t: number | null; line: string }[] }[],
    string,
  ][] = [
    ["two services interleave", [
      { source: "a", entries: [e(1, "a1"), e(3, "a2")] },
      { source: "b", entries: [e(2, "b1"), e(4, "b2")] },
    ], "a1 b1 a2 b2"],
    ["same time: the order of the sources", [
      { source: "a", entries: [e(5, "a1")] },
      { source: "b", entries: [e(5, "b1")] },
    ], "a1 b1"],
    ["an untimed line keeps its place after its predecessor", [
      { source: "a", entries: [e(1, "a1"), e(null, "a1+"), e(4, "a2")] },
      { source: "b", entries: [e(2, "b1")] },
    ], "a1 a1+ b1 a2"],
    ["untimed lines first in a file come first", [
      { source: "a", entries: [e(null, "old"), e(3, "a1")] },
      { source: "b", entries: [e(2, "b1")] },
    ], "old b1 a1"],
    ["a clock step back keeps the file's order", [
      { source: "a", entries: [e(10, "a1"), e(5, "a2")] },
      { source: "b", entries: [e(7, "b1")] },
    ], "b1 a1 a2"],
    ["nothing", [], ""],
  ];
  for (const [what, sources, want] of cases) {
    assertEquals(mergeLogs(sources).map((m) => m.line).join(" "), want, what);
  }
  assertEquals(lastEntries([1, 2, 3], 2), [2, 3]);
  assertEquals(lastEntries([1, 2, 3], 0), []);
  assertEquals(lastEntries([1, 2, 3], Infinity), [1, 2, 3]);
  assertEquals(lastEntries([1], 5), [1]);
});

testIf(
  NEEDS,
  "cli: hd logs interleaves services in time order; --tail, -t; -f ends with hd down",
  async () => {
    using tmp = tempDir();
    using store = tempDir();
    const opts = { cwd: tmp.path, store: store.path };
    await using _down = downAtEnd(opts);
    Deno.writeTextFileSync(
      `${tmp.path}/hd.toml`,
      `[environment]
name = "logtest"

[services.aa]
command = "echo a1; sleep 0.4; echo a2; exec sleep 600"

[services.b]
command = "sleep 0.2; echo b1; sleep 0.4; echo b2; exec sleep 600"

[options]
restart_grace = "1s"
`,
    );
    assertEquals((await hd(["up", "-d"], opts)).code, 0);
    await waitFor(async () => /^b2$/m.test((await hd(["logs", "b"], opts)).stdout), "b2", 10_000);
    const all = await hd(["logs"], opts);
    assertEquals(all.code, 0, all.stderr);
    const own = all.stdout.split("\n").filter((l) => /\| [ab]\d$/.test(l));
    assertEquals(own, ["aa | a1", "b  | b1", "aa | a2", "b  | b2"]);
    const tail = await hd(["logs", "--tail", "1", "-t"], opts);
    const lines = tail.stdout.trim().split("\n");
    assertEquals(lines.length, 2, tail.stdout);
    assert(/^aa \| \d{4}-\d\d-\d\dT[\d:.]+Z a2$/.test(lines[0]), tail.stdout);
    assert(/^b {2}\| \d{4}-\d\d-\d\dT[\d:.]+Z b2$/.test(lines[1]), tail.stdout);
    const bad = await hd(["logs", "--tail", "x"], opts);
    assertEquals(bad.code, 2);

    const follow = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--quiet", `${REPO}/cli.ts`, "logs", "-f", "--tail", "0"],
      cwd: tmp.path,
      env: { HD_HOME: store.path, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    await new Promise((r) => setTimeout(r, 800));
    assertEquals((await hd(["down"], opts)).code, 0);
    const t0 = performance.now();
    const res = await follow.output();
    assertEquals(res.code, 0, new TextDecoder().decode(res.stderr));
    assert(performance.now() - t0 < 5000, "hd logs -f ended with hd down");
    assert(new TextDecoder().decode(res.stdout).includes("stopped"), "it printed the last lines");
  },
);

Deno.test("cli: hd logs does not follow a shipped log that links out of .hd/logs, nor wait on a FIFO", async () => {
  using tmp = tempDir();
  using store = tempDir();
  const opts = { cwd: tmp.path, store: store.path };
  Deno.writeTextFileSync(
    `${tmp.path}/hd.toml`,
    `[environment]\nname = "shipped"\n\n[services.api]\ncommand = "exec sleep 600"\n\n[services.web]\ncommand = "exec sleep 600"\n`,
  );
  Deno.writeTextFileSync(`${tmp.path}/secret`, "2026-01-01T00:00:00.000Z s3cr3t\n");
  Deno.mkdirSync(`${tmp.path}/.hd/logs`, { recursive: true, mode: 0o700 });
  const table: [string, () => void, string | null][] = [
    [
      "a link out of .hd/logs",
      () => Deno.symlinkSync(`${tmp.path}/secret`, `${tmp.path}/.hd/logs/api.log`),
      "leads outside",
    ],
    ["a FIFO", () => {
      new Deno.Command("mkfifo", { args: [`${tmp.path}/.hd/logs/api.log`] }).outputSync();
    }, "is not a regular file"],
    ["a link to another log beside it", () => {
      Deno.writeTextFileSync(`${tmp.path}/.hd/logs/web.log`, "2026-01-01T00:00:00.000Z from web\n");
      Deno.symlinkSync("web.log", `${tmp.path}/.hd/logs/api.log`);
    }, null],
  ];
  for (const [what, ship, refused] of table) {
    for (const f of ["api.log", "web.log"]) {
      try {
        Deno.removeSync(`${tmp.path}/.hd/logs/${f}`);
      } catch { /* none */ }
    }
    ship();
    const r = await hd(["logs", "api"], opts);
    assert(!r.stdout.includes("s3cr3t") && !r.stderr.includes("s3cr3t"), `${what}: printed`);
    if (refused === null) {
      assertEquals(r.code, 0, `${what}: ${r.stderr}`);
      assertEquals(r.stdout.trim(), "from web", what);
      continue;
    }
    assertEquals(r.code, 1, `${what}: ${r.stdout}${r.stderr}`);
    assert(r.stderr.includes(refused) && r.stderr.includes("hint:"), `${what}: ${r.stderr}`);
  }
});
