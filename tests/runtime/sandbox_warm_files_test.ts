/**
 * The files of a sandboxed warm service (src/runtime/sandbox_services.ts `warmFiles`): hd's own
 * regular files are kept (a running container goes on writing its record there); anything a
 * repository could ship in `.hd/` instead — a link to a file of the user's, a directory in place
 * of a record — is removed and the directory made anew, so nothing but hd's empty files is ever
 * bound into a container. The link's target is untouched.
 * @module
 */
import { assert, assertEquals } from "../_assert.ts";
import { tempDir } from "../_helpers.ts";
import type { EnvSpec } from "../../src/config/types.ts";
import { sandboxWarm, warmDir, warmFiles } from "../../src/runtime/sandbox_services.ts";

const FILES = ["in/record.json", "in/loaded.json", "record.json", "loaded.json"];

function regularEmpty(path: string): boolean {
  const st = Deno.lstatSync(path);
  return st.isFile && !st.isSymlink && st.size === 0 && st.nlink === 1;
}

Deno.test("warmFiles makes hd's files, keeps them, and re-makes a shipped link", () => {
  using tmp = tempDir();
  const spec = { dir: tmp.path } as EnvSpec;
  const wd = warmFiles(spec, "web", null);
  assertEquals(wd, warmDir(spec, "web"));
  for (const f of FILES) assert(regularEmpty(`${wd}/${f}`), f);

  // kept: what a running container wrote stays
  Deno.writeTextFileSync(`${wd}/record.json`, '{"modules":[]}');
  warmFiles(spec, "web", null);
  assertEquals(Deno.readTextFileSync(`${wd}/record.json`), '{"modules":[]}');

  // a link (as a repository's .hd/ could ship) to a file of the user's: re-made, target untouched
  const secret = `${tmp.path}/secret`;
  Deno.writeTextFileSync(secret, "do not bind me");
  Deno.removeSync(`${wd}/loaded.json`);
  Deno.symlinkSync(secret, `${wd}/loaded.json`);
  warmFiles(spec, "web", null);
  for (const f of FILES) assert(regularEmpty(`${wd}/${f}`), f);
  assertEquals(Deno.readTextFileSync(secret), "do not bind me");

  // a hard link to it: re-made too
  Deno.removeSync(`${wd}/in/record.json`);
  Deno.linkSync(secret, `${wd}/in/record.json`);
  warmFiles(spec, "web", null);
  assert(regularEmpty(`${wd}/in/record.json`));
  assertEquals(Deno.readTextFileSync(secret), "do not bind me");

  // a directory where the record should be: re-made
  Deno.removeSync(`${wd}/record.json`);
  Deno.mkdirSync(`${wd}/record.json`);
  warmFiles(spec, "web", null);
  assert(regularEmpty(`${wd}/record.json`));

  // the mode a container gave the record is taken back
  Deno.chmodSync(`${wd}/record.json`, 0o4755);
  warmFiles(spec, "web", null);
  assertEquals(Deno.statSync(`${wd}/record.json`).mode! & 0o7777, 0o644);
});

Deno.test("sandboxWarm: which services of a base get standby containers", () => {
  const svc = (o: Record<string, unknown>) =>
    ({ name: "web", command: "node app.js", reload: "warm", ...o }) as never;
  const table: [string, Record<string, unknown>, boolean][] = [
    ["warm node line", {}, true],
    ["exec node", { command: "exec node --enable-source-maps app.js" }, true],
    ["a path to node", { command: "/usr/bin/node app.js" }, true],
    ["not warm", { reload: undefined }, false],
    ["restart", { reload: "restart" }, false],
    ["npm start", { command: "npm start" }, false],
    ["nodemon", { command: "nodemon app.js" }, false],
    ["exec form", { argv: ["node", "app.js"] }, false],
    ["its own image", { image: "node:20" }, false],
  ];
  for (const [what, o, want] of table) assertEquals(sandboxWarm(svc(o)), want, what);
});
