/** `hd completions`: the bash script completes commands, subcommands, options and services. */
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { hd, REPO, skipUnless, tempDir, testIf } from "../_helpers.ts";
import { completionCommand, completionScript } from "../../src/cli/completions.ts";

const BASH = skipUnless({ commands: ["bash"] });

Deno.test("completions: hidden options are left out; every shell gets a script (table)", () => {
  const c = completionCommand({
    name: "up",
    options: {
      detach: { type: "boolean", short: "d", help: "" },
      supervise: { type: "boolean", help: "", hidden: true },
    },
  });
  assertEquals(c.services, true);
  assert(c.options.includes("--detach") && c.options.includes("-d"));
  assert(!c.options.includes("--supervise"));
  for (
    const [shell, want] of [["bash", "complete -F _hd hd"], ["zsh", "bashcompinit"], [
      "fish",
      "complete -c hd",
    ]] as const
  ) {
    assertIncludes(completionScript(shell, [c]), want);
  }
});

testIf(
  BASH,
  "completions: bash completes commands, subcommands, options and service names",
  async () => {
    using tmp = tempDir();
    const script = await hd(["completions", "bash"]);
    assertEquals(script.code, 0, script.stderr);
    Deno.writeTextFileSync(`${tmp.path}/hd.bash`, script.stdout);
    Deno.mkdirSync(`${tmp.path}/bin`);
    Deno.writeTextFileSync(
      `${tmp.path}/bin/hd`,
      `#!/bin/sh\nexec "${Deno.execPath()}" run -A --quiet "${REPO}/cli.ts" "$@"\n`,
      { mode: 0o755 },
    );
    Deno.writeTextFileSync(
      `${tmp.path}/hd.toml`,
      `[environment]\nname = "c"\n[services.api]\ncommand = "x"\n[services.web]\ncommand = "y"\n`,
    );
    const complete = async (...words: string[]) => {
      const arr = words.map((w) => `'${w}'`).join(" ");
      const out = await new Deno.Command("bash", {
        args: [
          "-c",
          `source hd.bash; COMP_WORDS=(hd ${arr}); COMP_CWORD=${words.length}; _hd; echo "\${COMPREPLY[*]}"`,
        ],
        cwd: tmp.path,
        env: { PATH: `${tmp.path}/bin:${Deno.env.get("PATH")}`, NO_COLOR: "1" },
      }).output();
      return new TextDecoder().decode(out.stdout).trim();
    };
    assertEquals(await complete("ca"), "cas cache");
    assertEquals(await complete("cache", ""), "push ls pull");
    assertEquals(await complete("cas", ""), "add checkout cat stats gc verify");
    assertEquals(await complete("images", ""), "rm");
    assertEquals(await complete("up", "--de"), "--detach --debug");
    assertEquals(await complete("up", "--su"), "", "the internal --supervise is not offered");
    assertEquals(await complete("logs", ""), "api web");
    assertEquals(await complete("restart", "w"), "web");
    assertEquals(await complete("st"), "start stop status");
  },
);
