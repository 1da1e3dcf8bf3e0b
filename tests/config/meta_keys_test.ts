/** A service's `labels` (string table) and `expose` (ports), parsed and refused with file:line:col. */
import { assert, assertEquals } from "../_assert.ts";
import { assertMatch, throwsHd } from "./_util.ts";
import { parseSpec } from "../../src/config/parse.ts";

const SVC = '[environment]\nname = "x"\n[services.web]\ncommand = "x"\n';

Deno.test("labels and expose: parsed per service", () => {
  const spec = parseSpec(
    SVC + 'labels = { "a.b" = "1", c = "" }\nexpose = [9229, 3001]\n[services.w2]\ncommand = "y"\n',
    "/p/hd.toml",
  );
  assertEquals(spec.services.web.labels, { "a.b": "1", c: "" });
  assertEquals(spec.services.web.expose, [9229, 3001]);
  assertEquals([spec.services.w2.labels, spec.services.w2.expose], [undefined, undefined]);
});

Deno.test("labels and expose: bad values are located", () => {
  const cases: { toml: string; key: string; why: RegExp }[] = [
    { toml: 'labels = ["a=b"]\n', key: "services.web.labels", why: /table/ },
    { toml: "labels = { a = 1 }\n", key: "services.web.labels.a", why: /must be a string/ },
    { toml: "expose = 3000\n", key: "services.web.expose", why: /array/ },
    { toml: 'expose = ["3000"]\n', key: "services.web.expose[0]", why: /integers/ },
    { toml: "expose = [70000]\n", key: "services.web.expose[0]", why: /1 to 65535/ },
  ];
  for (const c of cases) {
    const err = throwsHd(() => parseSpec(SVC + c.toml, "/p/hd.toml"));
    assertMatch(err.message, c.why);
    assert(err.message.includes(`(key ${c.key})`), err.message);
    assert(err.message.includes("hd.toml:5:"), err.message);
  }
});
