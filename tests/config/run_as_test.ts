/**
 * The keys that say who runs a step or service and where: `[environment] user`, a step's `user`
 * and `workdir`, a base service's `user` — parsed, and refused with file:line:col where hd cannot
 * honour them (on the host hd does not switch users).
 */
import { assert, assertEquals } from "../_assert.ts";
import { assertMatch, throwsHd } from "./_util.ts";
import { parseSpec } from "../../src/config/parse.ts";
import { stepHashes } from "../../src/env/step_hashes.ts";
import { Tree } from "../../src/dag/tree.ts";

const BASE = '[environment]\nname = "x"\nbase = "busybox:1"\n';

Deno.test("user keys: [environment] user, step user/workdir and a base service's user parse", () => {
  const spec = parseSpec(
    BASE + 'user = "app"\n[build]\nsteps = [\n' +
      '  { run = "id", user = "www:web", workdir = "/srv" },\n' +
      '  { run = "pwd", workdir = "sub/dir" },\n' +
      '  "make",\n]\n' +
      '[services.web]\ncommand = "httpd"\nuser = "1000:1000"\n' +
      '[services.w2]\ncommand = "x"\n',
    "/p/hd.toml",
  );
  assertEquals(spec.environment.user, "app");
  const [a, b, c] = spec.build.steps;
  assertEquals([a.user, a.workdir], ["www:web", "/srv"]);
  assertEquals([b.user, b.workdir], [undefined, "sub/dir"]);
  assertEquals([c.user, c.workdir], [undefined, undefined]);
  assertEquals(spec.services.web.user, "1000:1000");
  assertEquals(spec.services.w2.user, undefined, "the default is applied at run time");
});

Deno.test("user keys: refused on the host and for bad values, each located", () => {
  const cases: { toml: string; key: string; why: RegExp; line: number }[] = [
    {
      toml: '[environment]\nname = "x"\nuser = "app"\n',
      key: "environment.user",
      why: /user needs a base: hd does not switch users on the host/,
      line: 3,
    },
    {
      toml: '[environment]\nname = "x"\n[build]\nsteps = [{ run = "id", user = "app" }]\n',
      key: "build.steps[0].user",
      why: /user needs a base/,
      line: 4,
    },
    {
      toml: '[environment]\nname = "x"\n[services.web]\ncommand = "x"\nuser = "app"\n',
      key: "services.web.user",
      why: /user needs an image/,
      line: 5,
    },
    {
      toml: BASE + 'user = "a b"\n',
      key: "environment.user",
      why: /is not a user name or id/,
      line: 4,
    },
    {
      toml: BASE + '[build]\nsteps = [{ run = "id", workdir = "/a/../../etc" }]\n',
      key: "build.steps[0].workdir",
      why: /"\.\."/,
      line: 5,
    },
    {
      toml: BASE + '[services.web]\ncommand = "x"\nuser = ":x"\n',
      key: "services.web.user",
      why: /not a user name or id/,
      line: 6,
    },
  ];
  for (const c of cases) {
    const err = throwsHd(() => parseSpec(c.toml, "/p/hd.toml"));
    assertMatch(err.message, c.why);
    assert(err.message.includes(`(key ${c.key})`), err.message);
    assert(err.message.includes(`hd.toml:${c.line}:`), err.message);
    assert(err.hint.length > 0, `no hint: ${err.message}`);
  }
});

Deno.test("user keys: who runs a step and where are part of its identity", () => {
  const ids = (toml: string) =>
    stepHashes(parseSpec(toml, "/p/hd.toml"), new Tree(), { baseId: "b".repeat(64) })
      .map((h) => h.id);
  const plain = ids(BASE + '[build]\nsteps = [{ run = "id", inputs = [] }]\n');
  const asApp = ids(BASE + '[build]\nsteps = [{ run = "id", inputs = [], user = "app" }]\n');
  const envApp = ids(BASE + 'user = "app"\n[build]\nsteps = [{ run = "id", inputs = [] }]\n');
  const inSrv = ids(BASE + '[build]\nsteps = [{ run = "id", inputs = [], workdir = "/srv" }]\n');
  assert(plain[0] !== asApp[0], "user changes the step");
  assertEquals(asApp, envApp, "[environment] user is the same as the step's own");
  assert(plain[0] !== inSrv[0] && asApp[0] !== inSrv[0], "workdir changes the step");
});
