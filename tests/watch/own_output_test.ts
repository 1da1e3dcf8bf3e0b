/** hd never watches its own output: `hd up > up.log` inside the project does not loop. */
import { assert, assertEquals } from "../_assert.ts";
import { REPO, skipUnless, tempDir, testIf } from "../_helpers.ts";
import { writtenInProject } from "../../src/watch/own_output.ts";

const NEEDS = skipUnless({ commands: ["setsid"] });

Deno.test("own output: project files open for writing are left out (table)", () => {
  const O_RDONLY = 0o100000, O_WRONLY = 0o100001, O_RDWR = 0o100002, APPEND = 0o102001;
  const cases: [string, { path: string; flags: number }[], string[]][] = [
    ["stdout redirected into the project", [{ path: "/p/up.log", flags: O_WRONLY }], ["up.log"]],
    ["appending, in a subdirectory", [{ path: "/p/logs/a.log", flags: APPEND }], ["logs/a.log"]],
    ["read-write counts", [{ path: "/p/db.sqlite", flags: O_RDWR }], ["db.sqlite"]],
    ["read-only does not", [{ path: "/p/hd.toml", flags: O_RDONLY }], []],
    ["outside the project", [{ path: "/tmp/x.log", flags: O_WRONLY }], []],
    ["a sibling with the same prefix", [{ path: "/p2/x.log", flags: O_WRONLY }], []],
    [
      "hd's own .hd/ is never tracked anyway",
      [{ path: "/p/.hd/logs/hd.log", flags: O_WRONLY }],
      [],
    ],
    ["a deleted file", [{ path: "/p/gone.log (deleted)", flags: O_WRONLY }], []],
    ["glob characters cannot be excluded by name", [{ path: "/p/a[1].log", flags: O_WRONLY }], []],
    ["twice (stdout and stderr) is once", [
      { path: "/p/up.log", flags: O_WRONLY },
      { path: "/p/up.log", flags: O_WRONLY },
    ], ["up.log"]],
  ];
  for (const [what, open, want] of cases) assertEquals(writtenInProject(open, "/p"), want, what);
});

testIf(
  NEEDS,
  "own output: `hd up > up.log` in the project does not see its own lines as edits",
  async () => {
    using tmp = tempDir();
    using store = tempDir();
    Deno.writeTextFileSync(
      `${tmp.path}/hd.toml`,
      `[environment]\nname = "selflog"\n\n[services.idle]\ncommand = "echo idle-up; exec sleep 600"\nwatch = ["*.txt"]\n\n[options]\ndebounce = "10ms"\nrestart_grace = "1s"\n`,
    );
    Deno.writeTextFileSync(`${tmp.path}/a.txt`, "1");
    const child = new Deno.Command("sh", {
      args: ["-c", `exec "$0" run -A --quiet "${REPO}/cli.ts" up > up.log 2>&1`, Deno.execPath()],
      cwd: tmp.path,
      env: { HD_HOME: store.path, NO_COLOR: "1" },
    }).spawn();
    try {
      const log = () => {
        try {
          return Deno.readTextFileSync(`${tmp.path}/up.log`);
        } catch {
          return ""; // the shell has not opened it yet
        }
      };
      const until = async (f: () => boolean, what: string) => {
        const end = Date.now() + 15_000;
        while (!f()) {
          if (Date.now() > end) throw new Error(`timed out: ${what}\n${log()}`);
          await new Promise((r) => setTimeout(r, 50));
        }
      };
      await until(() => log().includes("idle-up"), "the service started");
      await new Promise((r) => setTimeout(r, 1000));
      const quiet = log();
      assert(quiet.includes("not tracking up.log: hd writes its output there"), quiet);
      assert(!quiet.includes("modified up.log"), quiet);
      assertEquals(quiet.match(/root [0-9a-f]{64}/g)?.length, 1, quiet);
      // a real edit is still seen (once)
      Deno.writeTextFileSync(`${tmp.path}/a.txt`, "2");
      await until(() => log().includes("modified a.txt"), "the edit");
      await new Promise((r) => setTimeout(r, 500));
      assertEquals(log().match(/→/g)?.length, 1, log());
    } finally {
      child.kill("SIGINT");
      await child.status;
    }
  },
);
