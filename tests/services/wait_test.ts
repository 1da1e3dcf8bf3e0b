/**
 * The CLI that scripts trust, end to end with host services (sh scripts): `hd up -d --wait`
 * (healthchecks, a one-shot before its dependents, failures named with their log lines, the
 * timeout), `hd up -d` again reconciles, `hd stop`/`hd start`/`hd ps`, `hd exec SERVICE`.
 */
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { downAtEnd, hd, skipUnless, tempDir, testIf } from "../_helpers.ts";

const NEEDS = skipUnless({ commands: ["setsid"] });

const HEAD = `[environment]
name = "waittest"

[options]
restart_grace = "1s"
`;

type Svc = { name: string; state: string; health: string | null; healthOutput: string | null };

/**
 * A project for one test: a temporary `dir` whose hd.toml is HEAD + `services`, its own store
 * (`opts` for {@link hd}); at the end `hd down`, then both directories removed.
 */
function waitProject(services: string) {
  const tmp = tempDir();
  const store = tempDir();
  const opts = { cwd: tmp.path, store: store.path };
  Deno.writeTextFileSync(`${tmp.path}/hd.toml`, HEAD + services);
  const down = downAtEnd(opts);
  return {
    dir: tmp.path,
    opts,
    async [Symbol.asyncDispose]() {
      try {
        await down[Symbol.asyncDispose]();
      } finally {
        store[Symbol.dispose]();
        tmp[Symbol.dispose]();
      }
    },
  };
}

testIf(
  NEEDS,
  "up -d --wait: healthy db, one-shot migrate, then web; again = up to date; edits applied",
  async () => {
    const services = `
[services.db]
command = "sleep 0.4; touch db.ok; exec sleep 600"
healthcheck = { test = "test -f db.ok && echo accepting", interval = "200ms" }

[services.migrate]
command = "echo migrating; sleep 0.2; echo v1 > schema.txt"
restart_policy = "never"
depends_on = ["db"]

[services.web]
command = "cat schema.txt > web-saw.txt; exec sleep 600"
depends_on = { db = "service_healthy", migrate = "completed_successfully" }
`;
    await using p = waitProject(services);
    const { opts } = p;
    const up = await hd(["up", "-d", "--wait", "--json"], opts);
    assertEquals(up.code, 0, up.stderr + up.stdout);
    const st = JSON.parse(up.stdout);
    const by = Object.fromEntries(st.services.map((s: Svc) => [s.name, s]));
    assertEquals(
      [by.db.state, by.db.health, by.db.healthOutput, by.migrate.state, by.web.state],
      ["running", "healthy", "accepting", "exited", "running"],
    );
    // web started after the migration had completed
    assertEquals(Deno.readTextFileSync(`${p.dir}/web-saw.txt`), "v1\n");

    const again = await hd(["up", "-d"], opts);
    assertEquals(again.code, 0, again.stderr);
    assertIncludes(again.stdout, "waittest is up to date");

    // a new service in hd.toml: `hd up -d --wait` applies it to the running supervisor
    Deno.writeTextFileSync(
      `${p.dir}/hd.toml`,
      HEAD + services + `\n[services.extra]\ncommand = "exec sleep 600"\n`,
    );
    const applied = await hd(["up", "-d", "--wait"], opts);
    assertEquals(applied.code, 0, applied.stderr + applied.stdout);
    assert(/extra\s+running/.test(applied.stdout), applied.stdout);

    const ps = await hd(["ps"], opts);
    assertEquals(ps.code, 0, ps.stderr);
    assert(/db\s+running.*healthy: accepting/.test(ps.stdout), ps.stdout);

    // stop keeps a service stopped (its dependents keep running); start brings it back
    assertEquals((await hd(["stop", "extra"], opts)).code, 0);
    let ps2 = JSON.parse((await hd(["ps", "--json"], opts)).stdout).services as Svc[];
    assertEquals(ps2.find((s) => s.name === "extra")?.state, "stopped");
    assertEquals((await hd(["start", "extra"], opts)).code, 0);
    const t0 = Date.now();
    do {
      ps2 = JSON.parse((await hd(["ps", "--json"], opts)).stdout).services as Svc[];
    } while (ps2.find((s) => s.name === "extra")?.state !== "running" && Date.now() - t0 < 10_000);
    assertEquals(ps2.find((s) => s.name === "extra")?.state, "running");
    const bad = await hd(["stop", "nope"], opts);
    assertEquals(bad.code, 2);
    assertIncludes(bad.stderr, `Cannot stop "nope": no such service`);
  },
);

testIf(
  NEEDS,
  "up -d --wait: a crashing service fails it, named with its last log lines",
  async () => {
    await using p = waitProject(`
[services.db]
command = "echo 'FATAL: bad config' >&2; exit 2"

[services.api]
command = "exec sleep 600"
depends_on = ["db"]
`);
    const { opts } = p;
    const up = await hd(["up", "-d", "--wait"], opts);
    assertEquals(up.code, 1, up.stdout);
    assertIncludes(
      up.stderr,
      "error: Cannot bring waittest up: db crashed (exit code 2, crash loop)",
    );
    assertIncludes(up.stderr, "db | FATAL: bad config");
    assertIncludes(up.stderr, "hint: its last log lines are above (`hd logs db`)");
  },
);

testIf(
  NEEDS,
  "up -d --wait: a failed one-shot fails its dependents; not healthy in time fails",
  async () => {
    await using p = waitProject(`
[services.migrate]
command = "echo 'relation exists'; exit 3"
restart_policy = "never"

[services.web]
command = "exec sleep 600"
depends_on = { migrate = "completed_successfully" }
`);
    const { opts } = p;
    const up = await hd(["up", "-d", "--wait"], opts);
    assertEquals(up.code, 1, up.stdout);
    assertIncludes(up.stderr, "migrate exited with code 3");
    assertIncludes(up.stderr, "migrate | relation exists");
    assertIncludes(
      up.stderr,
      "web not started: migrate exited with code 3 (depends_on condition completed_successfully)",
    );
    assertEquals((await hd(["down"], opts)).code, 0);

    Deno.writeTextFileSync(
      `${p.dir}/hd.toml`,
      HEAD + `
[services.slow]
command = "exec sleep 600"
healthcheck = { test = "echo not yet; exit 1", interval = "30s" }
`,
    );
    const t0 = performance.now();
    const late = await hd(["up", "-d", "--wait", "--wait-timeout", "1s"], opts);
    assertEquals(late.code, 1, late.stdout);
    assertIncludes(late.stderr, "slow not healthy after 1 s (running, starting: not yet)");
    assert(performance.now() - t0 < 15_000);
    const badT = await hd(["up", "-d", "--wait", "--wait-timeout", "soon"], opts);
    assertEquals(badT.code, 2);
    assertIncludes(badT.stderr, `Cannot parse --wait-timeout: "soon"`);
  },
);

testIf(
  NEEDS,
  "exec SERVICE: runs in its workdir with its env; nothing after CMD is hd's",
  async () => {
    using tmp = tempDir();
    using store = tempDir();
    Deno.mkdirSync(`${tmp.path}/sub`);
    Deno.writeTextFileSync(
      `${tmp.path}/hd.toml`,
      HEAD + `
[services.db]
command = "exec sleep 600"
workdir = "sub"
env = { PGUSER = "app" }
`,
    );
    const opts = { cwd: tmp.path, store: store.path };
    const r = await hd(
      [
        "exec",
        "db",
        "sh",
        "-c",
        'echo "$PWD|$PGUSER|$*"; exit 5',
        "x",
        "-h",
        "h",
        "--json",
        "--help",
      ],
      opts,
    );
    assertEquals(r.code, 5, r.stderr);
    assertEquals(r.stdout.trim(), `${Deno.realPathSync(tmp.path)}/sub|app|-h h --json --help`);
    // a command that is not a service runs in the environment, its flags its own as well
    const plain = await hd(["exec", "sh", "-c", "echo $0", "-h"], opts);
    assertEquals(plain.stdout.trim(), "-h", plain.stderr);
    const none = await hd(["exec", "db"], opts);
    assertEquals(none.code, 2);
    assertIncludes(none.stderr, "Cannot exec in db: no command given");
  },
);
