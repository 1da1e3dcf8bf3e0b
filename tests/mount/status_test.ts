/** `hd status` lists the store's mounts (issue 5: "hd status lists mounts"). */
import { assertEquals } from "../_assert.ts";
import { hd, tempDir, testIf } from "../_helpers.ts";
import { fuseSkip, hdOk, withMount } from "./_util.ts";

testIf(fuseSkip(), "hd status lists a live mount, and none after unmount", async () => {
  using d = tempDir();
  const store = `${d.path}/store`;
  Deno.mkdirSync(`${d.path}/src`);
  Deno.writeTextFileSync(`${d.path}/src/a.txt`, "a\n");
  const root = JSON.parse(await hdOk(["cas", "add", `${d.path}/src`, "--json"], store)).root;
  const proj = `${d.path}/proj`;
  Deno.mkdirSync(proj);
  Deno.writeTextFileSync(`${proj}/hd.toml`, '[environment]\nname = "p"\n');
  const status = async () => {
    const r = await hd(["status", "--json"], { store, cwd: proj });
    assertEquals(r.code, 0, r.stderr);
    return JSON.parse(r.stdout).mounts as { dir: string; root: string; state: string }[];
  };
  await withMount(store, root, `${d.path}/mnt`, {}, async () => {
    const m = await status();
    assertEquals(m.map((x) => [x.dir, x.root, x.state]), [[`${d.path}/mnt`, root, "live"]]);
  });
  assertEquals(await status(), []);
});
