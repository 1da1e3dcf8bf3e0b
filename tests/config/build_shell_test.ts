/** `[build] shell`: parsed, refused when malformed (located), and part of every step's identity. */
import { assert, assertEquals } from "../_assert.ts";
import { assertMatch, throwsHd } from "./_util.ts";
import { parseSpec } from "../../src/config/parse.ts";
import { stepHashes } from "../../src/env/step_hashes.ts";
import { Tree } from "../../src/dag/tree.ts";

const ENV = '[environment]\nname = "x"\n[build]\nsteps = ["make"]\n';

Deno.test("build.shell: parsed; absent by default", () => {
  const spec = parseSpec(ENV + 'shell = ["/bin/bash", "-o", "pipefail", "-c"]\n', "/p/hd.toml");
  assertEquals(spec.build.shell, ["/bin/bash", "-o", "pipefail", "-c"]);
  assertEquals(parseSpec(ENV, "/p/hd.toml").build.shell, undefined);
});

Deno.test("build.shell: bad values are located", () => {
  for (
    const [toml, why] of [
      ['shell = "/bin/bash -c"\n', /array/],
      ["shell = []\n", /empty/],
      ["shell = [1]\n", /string/],
    ] as const
  ) {
    const err = throwsHd(() => parseSpec(ENV + toml, "/p/hd.toml"));
    assertMatch(err.message, why);
    assert(err.message.includes("(key build.shell"), err.message);
    assert(err.message.includes("hd.toml:5:"), err.message);
  }
});

Deno.test("build.shell: the shell is part of each step's identity", () => {
  const ids = (t: string) => stepHashes(parseSpec(t, "/p/hd.toml"), new Tree()).map((h) => h.id);
  const sh = ids(ENV);
  const bash = ids(ENV + 'shell = ["/bin/bash", "-c"]\n');
  assert(sh[0] !== bash[0]);
  assertEquals(ids(ENV + 'shell = ["/bin/bash", "-c"]\n'), bash);
});
