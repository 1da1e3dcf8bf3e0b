/**
 * SHELL becomes `[build] shell` (the last one); a RUN under another shell — before the SHELL, or
 * under an earlier SHELL — keeps its own by folding it into the command; exec-form RUNs need none.
 */
import { assertEquals } from "../_assert.ts";
import { translateDockerfile } from "../../src/ingest/from_dockerfile.ts";
import { currentFeatures, Translation } from "../../src/ingest/model.ts";

Deno.test("ingest: SHELL is [build] shell; RUNs under another shell keep theirs", () => {
  const tr = new Translation(currentFeatures());
  const r = translateDockerfile(tr, {
    file: "Dockerfile",
    text: "FROM a\nRUN echo one\n" +
      'SHELL ["/bin/zsh", "-c"]\nRUN echo two\n' +
      'SHELL ["/bin/bash", "-eo", "pipefail", "-c"]\nRUN echo three | cat\nRUN ["ls", "-l"]\n',
  });
  assertEquals(r.buildExtra.shell, ["/bin/bash", "-eo", "pipefail", "-c"]);
  assertEquals(r.steps.map((s) => s.run), [
    "/bin/sh -c 'echo one'",
    "/bin/zsh -c 'echo two'",
    "echo three | cat",
    "ls -l",
  ]);
});
