/**
 * Services started before the session loads (src/services/prespawn.ts): which services of which
 * specs may start early (a table of earlyServices), how spawn lines compare, and end to end on
 * the host: the first `hd up -d` saves the proof, the next no-change one starts its first service
 * early (and the session keeps it: one instance, which answers), also after a file was edited in
 * place, while a new file or a changed variable that hd.toml reads makes the session start it as
 * usual, with the new value.
 */
import { assert, assertEquals } from "../_assert.ts";
import { downAtEnd, hd, REPO, skipUnless, tempDir, testIf } from "../_helpers.ts";
import { waitFor, waitForProof } from "./_util.ts";
import { earlyArgs, earlyServices, sameLine, spawnLine } from "../../src/services/prespawn.ts";
import type { EnvSpec, ServiceSpec } from "../../src/config/types.ts";

function svc(name: string, extra: Partial<ServiceSpec> = {}): ServiceSpec {
  return {
    name,
    command: `run-${name}`,
    watch: [],
    port: null,
    depends_on: [],
    restart_policy: "on_failure",
    env: {},
    workdir: ".",
    ...extra,
  } as ServiceSpec;
}

function spec(services: ServiceSpec[], extra: Partial<EnvSpec> = {}): EnvSpec {
  return {
    dir: "/p",
    environment: { name: "t", base: null, env: {} },
    build: { steps: [] },
    services: Object.fromEntries(services.map((s) => [s.name, s])),
    ...extra,
  } as unknown as EnvSpec;
}

Deno.test("earlyArgs: only a supervisor with nothing named, and HD_PROFILES unset", () => {
  const plain = ["up", "--supervise"];
  const table: [string, string[], string | undefined, string | undefined | null][] = [
    ["first wave", plain, undefined, undefined],
    ["with --file", [...plain, "--file", "x/hd.toml"], undefined, "x/hd.toml"],
    ["services named", [...plain, "web"], undefined, null],
    ["a profile named", [...plain, "--profile", "a"], undefined, null],
    ["a cache named", [...plain, "--cache", "off"], undefined, null],
    ["HD_PROFILES", plain, "a", null],
    ["not the supervisor", ["up", "-d"], undefined, null],
  ];
  for (const [what, args, profiles, want] of table) {
    const got = earlyArgs(args, profiles);
    assertEquals("file" in got ? got.file : null, want, what);
    if (!("file" in got)) assert(got.why.length > 0, what);
  }
});

Deno.test("earlyServices: the services that depend on none, only where nothing else decides", () => {
  const two = spec([svc("api"), svc("web", { depends_on: ["api"] })]);
  const table: [string, EnvSpec, string[] | null][] = [
    ["first wave", two, ["api"]],
    [
      "a base image",
      spec([svc("api")], {
        environment: { name: "t", base: "debian:12", env: {} },
      } as Partial<EnvSpec>),
      null,
    ],
    [
      "a step with an image",
      spec([svc("api")], { build: { steps: [{ image: "node:20" }] } } as unknown as Partial<
        EnvSpec
      >),
      null,
    ],
    ["a service with profiles", spec([svc("api"), svc("x", { profiles: ["p"] })]), null],
    ["an image service", spec([svc("api"), svc("db", { image: "postgres" })]), null],
    ["secrets", spec([svc("api", { secrets: ["k"] })]), null],
    ["replicas", spec([svc("api", { replicaOf: { name: "api", index: 1, scale: 2 } })]), null],
    ["warm ones wait", spec([svc("api", { reload: "warm" }), svc("b")]), ["b"]],
    ["all wait or are warm", spec([svc("api", { reload: "warm" })]), null],
  ];
  for (const [what, s, want] of table) {
    const got = earlyServices(s);
    assertEquals("names" in got ? got.names : null, want, what);
    if (!("names" in got)) assert(got.why.length > 0, what);
  }
});

Deno.test("spawnLine and sameLine: the supervisor's command, directory and whole environment", () => {
  const a = spawnLine("/p", { command: "node a.js", workdir: "api", env: { B: "2" } }, {
    A: "1",
    B: "1",
  });
  assertEquals(a, { command: "node a.js", cwd: "/p/api", env: { A: "1", B: "2" } });
  assertEquals(spawnLine("/p", { command: "x", workdir: ".", env: {} }, {}).cwd, "/p");
  assert(sameLine(a, { ...a, env: { B: "2", A: "1" } }), "variables in another order");
  assert(!sameLine(a, { ...a, env: { A: "1" } }), "a variable less");
  assert(!sameLine(a, { ...a, env: { A: "1", B: "2", C: "" } }), "a variable more");
  assert(!sameLine(a, { ...a, env: { A: "1", B: "3" } }), "another value");
  assert(!sameLine(a, { ...a, cwd: "/p" }), "another directory");
  assert(!sameLine(a, { ...a, command: "node b.js" }), "another command");
});

const NEEDS = skipUnless({ commands: ["setsid", "sh"] });

/** The lines of `.hd/logs/<name>.log` that say how the service started. */
function starts(dir: string, name: string): string[] {
  try {
    return Deno.readTextFileSync(`${dir}/.hd/logs/${name}.log`).split("\n")
      .filter((l) => l.includes("] started (pid"));
  } catch {
    return [];
  }
}

/** Whether `path` holds a whole line (its writer renames it into place once written). */
function written(path: string): boolean {
  try {
    return Deno.readTextFileSync(path).endsWith("\n");
  } catch {
    return false;
  }
}

testIf(
  NEEDS,
  "hd up -d with nothing changed starts its first service before the session loads, and keeps it",
  async () => {
    using tmp = tempDir();
    using store = tempDir();
    const dir = tmp.path;
    const env = { GREETING: "hello" };
    const opts = { cwd: dir, store: store.path, env };
    Deno.mkdirSync(`${dir}/out`);
    // a writes what it saw, aside then renamed; b depends on it (not started early)
    Deno.writeTextFileSync(
      `${dir}/hd.toml`,
      `[environment]
name = "pre"
env = { SAY = "\${GREETING}" }

[files]
exclude = ["out"]

[services.a]
command = "sh -c 'echo $$$$ $$SAY > out/.a; mv out/.a out/a; exec sleep 600'"

[services.b]
command = "sleep 600"
depends_on = ["a"]
`,
    );
    Deno.writeTextFileSync(`${dir}/src.txt`, "one\n");
    await using _down = downAtEnd(opts);
    // the first up makes .hd/ in the project (its directory changes: no proof from that one);
    // the racy rule: what was written less than a second before a compile is not vouched for
    assertEquals((await hd(["up", "-d"], opts)).code, 0);
    assertEquals((await hd(["down"], opts)).code, 0);
    await new Promise((r) => setTimeout(r, 1200));
    Deno.removeSync(`${dir}/out/a`);
    const first = await hd(["up", "-d"], opts);
    assertEquals(first.code, 0, first.stderr);
    assertEquals(starts(dir, "a").length, 2);
    assert(!starts(dir, "a")[1].includes("before the session"), starts(dir, "a")[1]);
    // the session saves the proof a second after its start
    await waitForProof(dir);
    assertEquals((await hd(["down"], opts)).code, 0);

    // nothing changed: a starts early, the session keeps that one process
    Deno.removeSync(`${dir}/out/a`);
    const second = await hd(["up", "-d"], opts);
    assertEquals(second.code, 0, second.stderr);
    const s2 = starts(dir, "a");
    assertEquals(s2.length, 3, s2.join("\n"));
    assert(s2[2].includes("started before the session loaded"), s2[1]);
    await waitFor(() => written(`${dir}/out/a`), "a's answer");
    const [pid, said] = Deno.readTextFileSync(`${dir}/out/a`).trim().split(" ");
    assertEquals(said, "hello");
    const st = await hd(["status", "--json"], opts);
    const up = JSON.parse(st.stdout).up;
    assert(up.running, st.stdout);
    const a = up.services.find((x: { name: string }) => x.name === "a");
    // the session runs the group started early: its leader, whose group wrote the answer
    assert(s2[2].includes(`(pid ${a.pid}, started before`), `${a.pid}: ${s2[2]}`);
    const pgrp = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1].split(" ")[2];
    assertEquals(pgrp, String(a.pid), "the answer came from the group started early");
    assertEquals(a.state, "running");
    assert(!starts(dir, "b").at(-1)!.includes("before the session"), "b waits for a");
    assertEquals((await hd(["down"], opts)).code, 0);

    // a tracked file edited in place: rehashed against the proof's tree, a still starts early and
    // the session (whose compile finds the same tree) keeps it
    Deno.writeTextFileSync(`${dir}/src.txt`, "two\n", { append: true });
    const third = await hd(["up", "-d"], opts);
    assertEquals(third.code, 0, third.stderr);
    const s3 = starts(dir, "a");
    assertEquals(s3.length, 4, s3.join("\n"));
    assert(s3[3].includes("started before the session loaded"), s3[3]);
    const a3 = JSON.parse((await hd(["status", "--json"], opts)).stdout).up.services
      .find((x: { name: string }) => x.name === "a");
    assert(s3[3].includes(`(pid ${a3.pid}, started before`), `kept: ${a3.pid}: ${s3[3]}`);
    assertEquals((await hd(["down"], opts)).code, 0);
    // a file created: the directory changed, no proof holds, the session starts a as usual
    Deno.writeTextFileSync(`${dir}/new.txt`, "new\n");
    const fourth = await hd(["up", "-d"], opts);
    assertEquals(fourth.code, 0, fourth.stderr);
    const s4 = starts(dir, "a");
    assertEquals(s4.length, 5, s4.join("\n"));
    assert(!s4[4].includes("before the session"), s4[4]);
    assertEquals((await hd(["down"], opts)).code, 0);

    // a variable hd.toml reads changed: no early start, and a sees the new value
    await new Promise((r) => setTimeout(r, 1200)); // the edit above is past the racy window
    assertEquals((await hd(["up", "-d"], opts)).code, 0); // (saves the proof again)
    await waitFor(() => {
      try {
        return Deno.statSync(`${dir}/.hd/status.bin`).mtime!.getTime() > Date.now() - 5000;
      } catch {
        return false;
      }
    }, "the proof again");
    assertEquals((await hd(["down"], opts)).code, 0);
    Deno.removeSync(`${dir}/out/a`);
    const other = { ...opts, env: { GREETING: "bonjour" } };
    const fifth = await hd(["up", "-d"], other);
    assertEquals(fifth.code, 0, fifth.stderr);
    const s5 = starts(dir, "a");
    assertEquals(s5.length, 7, s5.join("\n"));
    assert(!s5[6].includes("before the session"), s5[6]);
    await waitFor(() => written(`${dir}/out/a`), "a's answer");
    assertEquals(Deno.readTextFileSync(`${dir}/out/a`).trim().split(" ")[1], "bonjour");
    assertEquals((await hd(["down"], other)).code, 0);
  },
);

testIf(
  NEEDS,
  "a foreground hd up with nothing changed starts its first service early too",
  async () => {
    using tmp = tempDir();
    using store = tempDir();
    const dir = tmp.path;
    const opts = { cwd: dir, store: store.path };
    Deno.writeTextFileSync(
      `${dir}/hd.toml`,
      `[environment]\nname = "fg"\n\n[services.a]\ncommand = "sleep 600"\n`,
    );
    await using _down = downAtEnd(opts);
    assertEquals((await hd(["up", "-d"], opts)).code, 0); // makes .hd/
    assertEquals((await hd(["down"], opts)).code, 0);
    await new Promise((r) => setTimeout(r, 1200)); // past the racy window
    /** `hd up` in the foreground until a's log has `n` starts, then SIGINT (this test's child only). */
    const foreground = async (n: number) => {
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "--quiet", `${REPO}/cli.ts`, "up"],
        cwd: dir,
        env: { HD_HOME: store.path, NO_COLOR: "1" },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      try {
        await waitFor(() => starts(dir, "a").length >= n, `start ${n} of a`);
        // its session is up once the state file says a runs
        await waitFor(() => {
          try {
            return Deno.readTextFileSync(`${dir}/.hd/up.json`).includes('"a"');
          } catch {
            return false;
          }
        }, "the state file");
      } finally {
        child.kill("SIGINT");
        const out = await child.output();
        assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
      }
    };
    await foreground(2); // stops within the second: saves the proof as it stops
    await foreground(3);
    const s = starts(dir, "a");
    assert(!s[1].includes("before the session"), s[1]);
    assert(s[2].includes("started before the session loaded"), s[2]);

    // a file edited while hd up runs: the session saves a fresh proof as it ends (the start's no
    // longer holds), so the next up starts early again
    assertEquals((await hd(["up", "-d"], opts)).code, 0);
    Deno.writeTextFileSync(`${dir}/notes.txt`, "edited while up\n");
    await new Promise((r) => setTimeout(r, 1300)); // the update, then past the racy window
    assertEquals((await hd(["down"], opts)).code, 0);
    // (--file as typed, ./ and all: resolved as the session resolves it)
    assertEquals((await hd(["up", "-d", "--file", "./hd.toml"], opts)).code, 0);
    const s5 = starts(dir, "a");
    assertEquals(s5.length, 5, s5.join("\n"));
    assert(s5[4].includes("started before the session loaded"), s5[4]);
  },
);

testIf(
  NEEDS,
  "a tampered or damaged proof starts nothing early and runs nothing it names",
  async () => {
    using tmp = tempDir();
    using store = tempDir();
    const dir = tmp.path;
    const opts = { cwd: dir, store: store.path };
    Deno.writeTextFileSync(
      `${dir}/hd.toml`,
      `[environment]\nname = "tamper"\n\n[services.a]\ncommand = "sleep 600"\n`,
    );
    await using _down = downAtEnd(opts);
    assertEquals((await hd(["up", "-d"], opts)).code, 0); // makes .hd/
    assertEquals((await hd(["down"], opts)).code, 0);
    await new Promise((r) => setTimeout(r, 1200));
    assertEquals((await hd(["up", "-d"], opts)).code, 0);
    assertEquals((await hd(["down"], opts)).code, 0); // saves the proof as it ends
    const proof = `${dir}/.hd/status.bin`;
    const good = Deno.readFileSync(proof);
    const text = new TextDecoder().decode(good);
    assert(text.includes("sleep 600"), "the proof carries the parsed spec");

    // the spec in the proof says another command, same length (only its MAC can tell): refused
    Deno.writeFileSync(proof, new TextEncoder().encode(text.replace("sleep 600", "touch pwn")));
    assertEquals((await hd(["up", "-d"], opts)).code, 0);
    let s = starts(dir, "a");
    assertEquals(s.length, 3, s.join("\n"));
    assert(!s[2].includes("before the session"), s[2]);
    assert(s[2].endsWith("sleep 600"), s[2]);
    assert(!exists(`${dir}/pwn`), "the tampered command never ran");
    assertEquals((await hd(["down"], opts)).code, 0);

    // the proof as saved: early (so the refusals here are the proof's doing)
    Deno.writeFileSync(proof, good);
    assertEquals((await hd(["up", "-d"], opts)).code, 0);
    s = starts(dir, "a");
    assert(s[3].includes("started before the session loaded"), s[3]);
    assertEquals((await hd(["down"], opts)).code, 0);

    // the same proof from another store (another key): refused
    Deno.writeFileSync(proof, good);
    using other = tempDir();
    const elsewhere = { ...opts, store: other.path };
    assertEquals((await hd(["up", "-d"], elsewhere)).code, 0);
    s = starts(dir, "a");
    assert(!s[4].includes("before the session"), s[4]);
    assertEquals((await hd(["down"], elsewhere)).code, 0);

    // bytes that are no proof at all, and a proof that is a symlink: the session starts as usual
    Deno.writeFileSync(proof, new Uint8Array(5000).map((_, i) => (i * 151) % 256));
    assertEquals((await hd(["up", "-d"], opts)).code, 0);
    assertEquals((await hd(["down"], opts)).code, 0);
    Deno.removeSync(proof);
    Deno.symlinkSync("/dev/zero", proof);
    assertEquals((await hd(["up", "-d"], opts)).code, 0);
    s = starts(dir, "a");
    assertEquals(s.length, 7, s.join("\n"));
    assert(s.slice(5).every((l) => !l.includes("before the session")), s.join("\n"));
    assertEquals((await hd(["down"], opts)).code, 0);
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
