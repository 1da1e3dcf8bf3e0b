/**
 * `.env` feeds hd.toml's `${VAR}`: an edit of it under a running loop reads hd.toml again and
 * applies the changed service in place (the other keeps running), as an edit of hd.toml would.
 * @module
 */
import { assertEquals } from "../_assert.ts";
import { skipUnless, tempDir, testIf } from "../_helpers.ts";
import { Store } from "../../src/cas/store.ts";
import { DevLoop } from "../../src/services/loop.ts";
import { loadSpec } from "../../src/config/parse.ts";
import { waitFor } from "./_util.ts";

const NEEDS = skipUnless({ commands: ["setsid"] });

testIf(
  NEEDS,
  "loop: an edit of .env re-reads hd.toml and restarts the service it changes",
  async () => {
    using tmp = tempDir();
    using st = tempDir();
    const dir = tmp.path;
    Deno.writeTextFileSync(`${dir}/.env`, "WORD=one\n");
    Deno.writeTextFileSync(`${dir}/b.env`, "SAID=first\n");
    Deno.writeTextFileSync(
      `${dir}/hd.toml`,
      `[environment]
name = "dotenv"

[services.a]
command = "exec sleep 60"

[services.b]
command = "echo b-\${WORD}-$SAID; exec sleep 60"
env_file = "b.env"
`,
    );
    const spec = loadSpec(`${dir}/hd.toml`);
    const out: string[] = [];
    let reloads = 0;
    const loop = await DevLoop.open({
      spec,
      store: Store.open(`${st.path}/store`),
      print: (s, l) => out.push(`${s} | ${l}`),
      onSpecChange: () => void reloads++,
    });
    await loop.start();
    try {
      await loop.supervisor.settled();
      await waitFor(() => out.includes("b | b-one-first"), "b started with .env's value");
      const aPid = loop.supervisor.status()[0].pid;
      Deno.writeTextFileSync(`${dir}/.env`, "WORD=two\n");
      await waitFor(() => out.includes("b | b-two-first"), "b restarted with the new .env");
      Deno.writeTextFileSync(`${dir}/b.env`, "SAID=second\n");
      await waitFor(() => out.includes("b | b-two-second"), "b restarted with the new env_file");
      assertEquals(loop.supervisor.status()[0].pid, aPid);
      assertEquals(reloads, 0);
    } finally {
      await loop.stop();
    }
  },
);
