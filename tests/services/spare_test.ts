/**
 * The spare supervisor (src/services/spare.ts): when it may go on as the supervisor an `hd up -d`
 * asks for (a table of spareDecision), what a request must look like, HD_SPARE_LINGER, the stamp
 * of hd's code; and end to end on the host: `hd down` leaves a spare, the next `hd up -d` takes it
 * (the supervisor is that very process, its service answers), a second `hd down` stops it, one
 * asked with other variables declines and exits (the up starts its own supervisor), a client that
 * sends nothing holds up no other, and a spare ends after its linger or when its project goes. A
 * `.hd/spare.sock` that is a link, not a socket, or in a `.hd/` open to others is sent nothing (a
 * start request carries the user's variables).
 */
import { assert, assertEquals } from "../_assert.ts";
import { downAtEnd, hd, skipUnless, tempDir, testIf } from "../_helpers.ts";
import { freePort, waitFor } from "./_util.ts";
import {
  codeStamp,
  parseSpareLinger,
  parseSpareRequest,
  spareDecision,
  spareSocketPath,
  trustedSpareSocket,
} from "../../src/services/spare.ts";
import { jsonlRequest } from "../../src/sys/jsonl.ts";
import { readUpState } from "../../src/services/control.ts";
import type { SpareRequest } from "../../src/services/spare.ts";

Deno.test("spareDecision: only the same command line, directory, variables (but PWD) and code", () => {
  const self: SpareRequest = {
    argv: ["/usr/bin/deno", "run", "-A", "cli.ts", "up", "--supervise"],
    cwd: "/p",
    env: { PATH: "/bin", HD_HOME: "/s", PWD: "/p", SECRET: "hunter2" },
  };
  const same: SpareRequest = { ...self, env: { ...self.env } };
  const table: [string, SpareRequest, "same" | "changed" | "unknown", string | null][] = [
    ["the same", same, "same", null],
    ["PWD aside", { ...same, env: { ...same.env, PWD: "/link/to/p" } }, "same", null],
    [
      "no PWD at all",
      { ...same, env: { PATH: "/bin", HD_HOME: "/s", SECRET: "hunter2" } },
      "same",
      null,
    ],
    [
      "another argument",
      { ...same, argv: [...self.argv.slice(0, -1), "--detach"] },
      "same",
      "command line",
    ],
    ["an argument more", { ...same, argv: [...self.argv, "web"] }, "same", "command line"],
    ["another directory", { ...same, cwd: "/p/sub" }, "same", "working directory"],
    ["a variable more", { ...same, env: { ...same.env, HD_PROFILES: "a" } }, "same", "HD_PROFILES"],
    [
      "a variable less",
      { ...same, env: { PATH: "/bin", PWD: "/p", SECRET: "hunter2" } },
      "same",
      "HD_HOME",
    ],
    ["another value", { ...same, env: { ...same.env, SECRET: "s3cr3t-2" } }, "same", "SECRET"],
    ["hd's code changed", same, "changed", "code changed"],
    ["hd's code not known", same, "unknown", "cannot be stamped"],
  ];
  for (const [what, req, code, why] of table) {
    const got = spareDecision(self, req, code);
    if (why === null) assertEquals(got, { go: true }, what);
    else {
      assert("why" in got && got.why.includes(why), `${what}: ${JSON.stringify(got)}`);
      assert(!got.why.includes("hunter2") && !got.why.includes("s3cr3t-2"), `${what}: no values`);
    }
  }
  const many = Object.fromEntries([...Array(8)].map((_, i) => [`V${i}`, "x"]));
  const got = spareDecision(self, { ...same, env: { ...same.env, ...many } }, "same");
  assert("why" in got && got.why.endsWith(", …)"), JSON.stringify(got));
});

Deno.test("parseSpareRequest: every field with its shape, or nothing", () => {
  const good = { op: "start", argv: ["a"], cwd: "/", env: { A: "1" } };
  assertEquals(parseSpareRequest(good), { argv: ["a"], cwd: "/", env: { A: "1" } });
  const bad: unknown[] = [
    null,
    "start",
    [],
    { ...good, argv: "a" },
    { ...good, argv: [1] },
    { ...good, argv: Array(4097).fill("a") },
    { ...good, cwd: 1 },
    { ...good, env: null },
    { ...good, env: ["A=1"] },
    { ...good, env: { A: 1 } },
    { ...good, env: Object.fromEntries([...Array(4097)].map((_, i) => [`V${i}`, ""])) },
  ];
  for (const b of bad) assertEquals(parseSpareRequest(b), null, JSON.stringify(b).slice(0, 60));
});

Deno.test("parseSpareLinger: whole seconds up to a day; anything else leaves no spare", () => {
  assertEquals(parseSpareLinger(undefined), { ms: 300_000 });
  assertEquals(parseSpareLinger(""), { ms: 300_000 });
  assertEquals(parseSpareLinger("0"), { ms: 0 });
  assertEquals(parseSpareLinger("86400"), { ms: 86_400_000 });
  for (const v of ["-1", "1.5", "soon", "86401", "999999"]) {
    const r = parseSpareLinger(v);
    assertEquals(r.ms, 0, v);
    assert(r.error?.includes("HD_SPARE_LINGER") && r.error.includes("0 to 86400"), r.error);
  }
});

Deno.test("codeStamp: changes with any edit, addition or removal of hd's code", () => {
  using tmp = tempDir();
  const root = `${tmp.path}/`;
  Deno.mkdirSync(`${root}src/sys`, { recursive: true });
  Deno.mkdirSync(`${root}ffi`);
  for (const f of ["cli.ts", "deno.json", "deno.lock", "src/a.ts", "src/sys/b.ts", "ffi/c.ts"]) {
    Deno.writeTextFileSync(`${root}${f}`, `// ${f}\n`);
  }
  const s0 = codeStamp(root);
  assert(s0 !== null && s0.includes("src/sys/b.ts") && s0.includes("ffi/c.ts"), s0 ?? "");
  assertEquals(codeStamp(root), s0, "nothing changed");
  const edits: [string, () => void][] = [
    [
      "a file edited",
      () => Deno.writeTextFileSync(`${root}src/a.ts`, "// more\n", { append: true }),
    ],
    ["a file added", () => Deno.writeTextFileSync(`${root}src/sys/new.ts`, "")],
    ["a file removed", () => Deno.removeSync(`${root}ffi/c.ts`)],
    ["deno.lock touched", () => Deno.utimeSync(`${root}deno.lock`, 1, 1)],
    ["cli.ts replaced", () => {
      Deno.writeTextFileSync(`${root}cli.ts.new`, "// cli.ts\n");
      Deno.renameSync(`${root}cli.ts.new`, `${root}cli.ts`);
    }],
  ];
  let before = s0;
  for (const [what, edit] of edits) {
    edit();
    const now = codeStamp(root);
    assert(now !== null && now !== before, what);
    before = now;
  }
  // without the directories: only the files beside them count
  const top = codeStamp(root, false);
  Deno.writeTextFileSync(`${root}src/a.ts`, "// again\n", { append: true });
  assertEquals(codeStamp(root, false), top, "src/ is watched, not stamped, then");
});

const NEEDS = skipUnless({ commands: ["setsid", "sh", "node"] });

/** Whether `pid` is gone (or a zombie: its parent exited, and nothing here may reap it). */
function gone(pid: number): boolean {
  try {
    const s = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return s.slice(s.lastIndexOf(")") + 2, s.lastIndexOf(")") + 3) === "Z";
  } catch {
    return true;
  }
}

/** The spare's pid, once it answers on the project's socket. */
async function sparePid(dir: string): Promise<number> {
  let pid = 0;
  await waitFor(async () => {
    const r = await jsonlRequest(spareSocketPath(dir), { op: "ping" }, { replyTimeoutMs: 2000 })
      .catch(() => null) as { pid?: number } | null;
    pid = r?.pid ?? 0;
    return pid > 1;
  }, "the spare");
  return pid;
}

function project(dir: string, port: number): void {
  Deno.writeTextFileSync(
    `${dir}/hd.toml`,
    `[environment]
name = "spare"

[services.api]
command = "exec node -e \\"require('http').createServer((q,s)=>s.end('pid '+process.ppid)).listen(${port},'127.0.0.1')\\""
port = ${port}
`,
  );
}

testIf(
  NEEDS,
  "hd down leaves a spare that the next hd up -d goes on as; a second hd down stops it",
  async () => {
    using tmp = tempDir();
    using store = tempDir();
    const dir = tmp.path;
    const port = freePort();
    project(dir, port);
    const opts = { cwd: dir, store: store.path, env: { HD_SPARE_LINGER: "60" } };
    await using _down = downAtEnd(opts);
    assertEquals((await hd(["up", "-d"], opts)).code, 0);
    const first = readUpState(dir)?.state?.pid;
    assertEquals((await hd(["down"], opts)).code, 0);
    const spare = await sparePid(dir);
    assert(spare !== first, "a new process");
    const up = await hd(["up", "-d", "--json"], opts);
    assertEquals(up.code, 0, up.stderr);
    // the supervisor is the spare itself, and what it started answers
    assertEquals(readUpState(dir)?.state?.pid, spare);
    assertEquals(JSON.parse(up.stdout).pid, spare);
    const body = await (await fetch(`http://127.0.0.1:${port}/`)).text();
    assert(body.startsWith("pid "), body);
    let socketGone = false;
    try {
      Deno.lstatSync(spareSocketPath(dir));
    } catch {
      socketGone = true;
    }
    assert(socketGone, "a spare that went on no longer listens as one");
    // down: the supervisor leaves the next spare; down again with nothing running stops it
    assertEquals((await hd(["down"], opts)).code, 0);
    await waitFor(() => gone(spare), "the supervisor's exit");
    const next = await sparePid(dir);
    const again = await hd(["down", "--json"], opts);
    assertEquals(again.code, 0, again.stderr);
    assertEquals(JSON.parse(again.stdout), { running: false, spareStopped: true });
    await waitFor(() => gone(next), "the spare's exit");
  },
);

testIf(
  NEEDS,
  "a spare asked with other variables declines and exits; the up starts its own supervisor",
  async () => {
    using tmp = tempDir();
    using store = tempDir();
    const dir = tmp.path;
    const port = freePort();
    project(dir, port);
    const opts = { cwd: dir, store: store.path, env: { HD_SPARE_LINGER: "60" } };
    await using _down = downAtEnd(opts);
    assertEquals((await hd(["up", "-d"], opts)).code, 0);
    assertEquals((await hd(["down"], opts)).code, 0);
    const spare = await sparePid(dir);
    // a client that connects and says nothing holds up no other
    const idle = await Deno.connect({ transport: "unix", path: spareSocketPath(dir) });
    const bad = await jsonlRequest(spareSocketPath(dir), { op: "nonsense" }, {
      replyTimeoutMs: 2000,
    });
    assertEquals(bad, { error: "unknown request" });
    const other = { ...opts, env: { ...opts.env, EXTRA_SETTING: "1" } };
    const up = await hd(["up", "-d"], other);
    assertEquals(up.code, 0, up.stderr);
    idle.close();
    const sup = readUpState(dir)?.state?.pid;
    assert(sup !== undefined && sup !== spare, `${sup} is not the spare ${spare}`);
    await waitFor(() => gone(spare), "the spare's exit");
    assert(
      Deno.readTextFileSync(`${dir}/.hd/logs/hd.log`).length > 0,
      "the supervisor logs as usual",
    );
    assertEquals(
      (await fetch(`http://127.0.0.1:${port}/`).then((r) => r.text())).slice(0, 4),
      "pid ",
    );
    assertEquals((await hd(["down"], other)).code, 0);
    await hd(["down"], other); // its own spare
  },
);

testIf(
  NEEDS,
  "a spare ends after HD_SPARE_LINGER, or when its project is removed; 0 leaves none",
  async () => {
    using store = tempDir();
    const run = async (linger: string) => {
      const tmp = tempDir();
      const dir = tmp.path;
      project(dir, freePort());
      const opts = { cwd: dir, store: store.path, env: { HD_SPARE_LINGER: linger } };
      try {
        assertEquals((await hd(["up", "-d"], opts)).code, 0);
      } finally {
        // (a spare that outlives a failed test ends when its directory is removed)
        assertEquals((await hd(["down"], opts)).code, 0);
      }
      return { tmp, dir };
    };
    // 0: none (the supervisor is gone once hd down returns; nothing listens after it)
    const none = await run("0");
    await new Promise((r) => setTimeout(r, 1500));
    let listening = true;
    try {
      Deno.lstatSync(spareSocketPath(none.dir));
    } catch {
      listening = false;
    }
    assert(!listening, "HD_SPARE_LINGER=0 leaves no spare");
    none.tmp[Symbol.dispose]();
    // 1 s: the spare exits by itself and removes its socket
    const short = await run("1");
    const pid = await sparePid(short.dir);
    await waitFor(() => gone(pid), "the lingered spare's exit", 10_000);
    let left = true;
    try {
      Deno.lstatSync(spareSocketPath(short.dir));
    } catch {
      left = false;
    }
    assert(!left, "its socket removed");
    short.tmp[Symbol.dispose]();
    // the project removed: its spare sees its socket go, and exits long before its linger
    const removed = await run("600");
    const pid2 = await sparePid(removed.dir);
    removed.tmp[Symbol.dispose]();
    await waitFor(() => gone(pid2), "the spare of a removed project", 10_000);
  },
);

Deno.test("trustedSpareSocket: a socket of this user in a closed .hd/, nothing else", () => {
  using tmp = tempDir();
  using other = tempDir();
  const dir = tmp.path;
  Deno.mkdirSync(`${dir}/.hd`, { mode: 0o700 });
  Deno.chmodSync(`${dir}/.hd`, 0o700);
  assert(!trustedSpareSocket(dir), "none");
  Deno.writeTextFileSync(spareSocketPath(dir), "");
  assert(!trustedSpareSocket(dir), "a regular file");
  Deno.removeSync(spareSocketPath(dir));
  const elsewhere = Deno.listen({ transport: "unix", path: `${other.path}/s.sock` });
  try {
    Deno.symlinkSync(`${other.path}/s.sock`, spareSocketPath(dir));
    assert(!trustedSpareSocket(dir), "a link to a socket");
    Deno.removeSync(spareSocketPath(dir));
    const l = Deno.listen({ transport: "unix", path: spareSocketPath(dir) });
    try {
      assert(trustedSpareSocket(dir), "a socket of this user in a 0700 .hd");
      Deno.chmodSync(`${dir}/.hd`, 0o755);
      assert(!trustedSpareSocket(dir), ".hd open to others");
      Deno.chmodSync(`${dir}/.hd`, 0o700);
      Deno.renameSync(`${dir}/.hd`, `${dir}/real`);
      Deno.symlinkSync(`${dir}/real`, `${dir}/.hd`);
      assert(!trustedSpareSocket(dir), ".hd a link");
    } finally {
      l.close();
    }
  } finally {
    elsewhere.close();
  }
});

testIf(
  NEEDS,
  "hd up -d sends nothing to a .hd/spare.sock a project ships as a link to another socket",
  async () => {
    using tmp = tempDir();
    using store = tempDir();
    using other = tempDir();
    const dir = tmp.path;
    project(dir, freePort());
    Deno.mkdirSync(`${dir}/.hd`, { mode: 0o700 });
    Deno.chmodSync(`${dir}/.hd`, 0o700);
    // a listener elsewhere that counts what reaches it
    const listener = Deno.listen({ transport: "unix", path: `${other.path}/evil.sock` });
    let reached = 0;
    const accepting = (async () => {
      for await (const c of listener) (reached++, c.close());
    })().catch(() => {});
    Deno.symlinkSync(`${other.path}/evil.sock`, spareSocketPath(dir));
    const opts = { cwd: dir, store: store.path, env: { HD_SPARE_LINGER: "0" } };
    await using _down = downAtEnd(opts);
    const up = await hd(["up", "-d"], opts);
    assertEquals(up.code, 0, up.stderr);
    assertEquals((await hd(["down"], opts)).code, 0);
    assertEquals((await hd(["down"], opts)).code, 0); // nothing running: no spare asked either
    listener.close();
    await accepting;
    assertEquals(reached, 0, "nothing connected to the linked socket");
  },
);
