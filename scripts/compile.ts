/**
 * `deno task compile`: builds the single `hd` binary with `deno compile`. Deno downloads its
 * runtime (denort) for that; where the download is unreachable, this fails with one clear message.
 * Set DENORT_BIN to a denort binary of the same Deno version to compile offline.
 * @module
 */
import { exists } from "../src/sys/fs.ts";
import { v8FlagsArg } from "../src/sys/v8_flags.ts";

const repo = new URL("..", import.meta.url).pathname;
const out = Deno.args[0] ?? `${repo}hd`;
// Worker modules, and the modules imported through src/sys/lazy.ts (every command, the store,
// the scanner: not in the module graph Deno builds ahead), are loaded by URL at run time:
// deno compile must be told to embed them.
const modules = (dir: string): string[] =>
  [...Deno.readDirSync(dir)].flatMap((e) =>
    e.isDirectory ? modules(`${dir}/${e.name}`) : e.name.endsWith(".ts") ? [`${dir}/${e.name}`] : []
  );
const workers = [`${repo}src/scan/ingest_worker.ts`, ...modules(`${repo}src`)]
  .filter((p, i, all) => exists(p) && all.indexOf(p) === i);
const args = [
  "compile",
  "-A",
  "--no-check",
  v8FlagsArg(), // embedded: the binary runs with hd's V8 flags, like `deno task hd`
  ...workers.flatMap((w) => ["--include", w]),
  "-o",
  out,
  `${repo}cli.ts`,
];
const denort = Deno.env.get("DENORT_BIN");
const res = await new Deno.Command(Deno.execPath(), { args, stdout: "inherit", stderr: "piped" })
  .output();
const err = new TextDecoder().decode(res.stderr);
if (!res.success) {
  if (/dl\.deno\.land|denort|error sending request/.test(err) && !denort) {
    console.error(
      `error: Cannot compile hd: Deno's runtime (denort ${Deno.version.deno}) could not be downloaded`,
    );
    console.error(
      `hint: set DENORT_BIN to a denort binary for Deno ${Deno.version.deno} (from a machine with ` +
        "access to dl.deno.land), or run hd with `deno task hd …` instead",
    );
  } else {
    console.error(err.trim());
    console.error(`error: Cannot compile hd: deno compile exited with ${res.code}`);
  }
  Deno.exit(1);
}
console.log(`compiled ${out}`);
