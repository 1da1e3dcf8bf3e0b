/**
 * `profiles` and `scale` in hd.toml: parsed, checked with located errors, and scale expanded into
 * replicas NAME-1..N whose dependents wait for every one of them.
 */
import { assertEquals } from "../_assert.ts";
import { parseSpec } from "../../src/config/parse.ts";
import { assertMatch, throwsHd } from "./_util.ts";

const HEAD = '[environment]\nname = "x"\n';

Deno.test("profiles: parsed, deduplicated; a bad name is located", () => {
  const spec = parseSpec(
    HEAD + '[services.a]\ncommand = "a"\nprofiles = ["debug", "dev", "debug"]\n',
    "/p/hd.toml",
  );
  assertEquals(spec.services.a.profiles, ["debug", "dev"]);
  assertEquals(
    parseSpec(HEAD + '[services.a]\ncommand = "a"\n', "/p/hd.toml").services.a.profiles,
    undefined,
  );
  const e = throwsHd(() =>
    parseSpec(HEAD + '[services.a]\ncommand = "a"\nprofiles = ["de bug"]\n', "/p/hd.toml")
  );
  assertEquals(
    e.message,
    'Cannot load hd.toml: /p/hd.toml:5:13: profile "de bug" is not a valid name (key services.a.profiles[0])',
  );
});

Deno.test("scale: replicas NAME-1..N in place; depends_on waits for each", () => {
  const spec = parseSpec(
    HEAD + `[services.db]
command = "db"
[services.api]
command = "api"
scale = 3
depends_on = ["db"]
[services.web]
command = "web"
depends_on = { api = "healthy", db = "started" }
`,
    "/p/hd.toml",
  );
  assertEquals(Object.keys(spec.services), ["db", "api-1", "api-2", "api-3", "web"]);
  assertEquals(spec.services["api-2"].replicaOf, { name: "api", index: 2, scale: 3 });
  assertEquals(spec.services["api-2"].depends_on, ["db"]);
  assertEquals(spec.services["api-3"].command, "api");
  assertEquals(spec.services.web.depends_on, ["api-1", "api-2", "api-3", "db"]);
  assertEquals(spec.services.web.depends_conditions, {
    "api-1": "healthy",
    "api-2": "healthy",
    "api-3": "healthy",
    db: "started",
  });
  // on the host replicas have no names of their own: no alias
  assertEquals(spec.services["api-1"].aliases, undefined);
  // scale = 1 is the service itself
  const one = parseSpec(HEAD + '[services.a]\ncommand = "a"\nscale = 1\n', "/p/hd.toml");
  assertEquals(Object.keys(one.services), ["a"]);
});

Deno.test("scale with a base: each replica answers to the service's name too", () => {
  const spec = parseSpec(
    '[environment]\nname = "x"\nbase = "busybox"\n[services.api]\ncommand = "api"\nport = 80\n' +
      'scale = 2\naliases = ["backend"]\nports = ["80"]\n',
    "/p/hd.toml",
  );
  assertEquals(spec.services["api-1"].aliases, ["backend", "api"]);
  assertEquals(spec.services["api-2"].port, 80);
});

Deno.test("scale: located errors", () => {
  const table: [string, string, RegExp][] = [
    [
      '[services.a]\ncommand = "a"\nscale = 0\n',
      "5:9: scale must be an integer from 1 to 64, not 0 (key services.a.scale)",
      /e\.g\. scale = 3/,
    ],
    [
      '[services.a]\ncommand = "a"\nscale = "2"\n',
      '5:9: scale must be an integer from 1 to 64, not "2"',
      /remove the quotes/,
    ],
    ['[services.a]\ncommand = "a"\nscale = 65\n', "not 65", /scale = 3/],
    [
      '[services.a]\ncommand = "a"\nport = 3000\nscale = 2\n',
      "5:1: scale = 2 with port 3000 on the host: the replicas would share the host's network and its one port (key services.a.port)",
      /remove port/,
    ],
    [
      '[services.a]\ncommand = "a"\nscale = 2\n[services.a-2]\ncommand = "b"\n',
      'replica "a-2" of "a" has the name of another service (key services.a.scale)',
      /rename service "a-2"/,
    ],
  ];
  for (const [body, msg, hint] of table) {
    const e = throwsHd(() => parseSpec(HEAD + body, "/p/hd.toml"));
    assertMatch(e.message, new RegExp(msg.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
    assertMatch(e.hint, hint);
  }
  const fixed = throwsHd(() =>
    parseSpec(
      '[environment]\nname = "x"\nbase = "b"\n[services.a]\ncommand = "a"\nscale = 2\nports = ["8080:80"]\n',
      "/p/hd.toml",
    )
  );
  assertMatch(fixed.message, /scale = 2 with the fixed host port 8080/);
});
