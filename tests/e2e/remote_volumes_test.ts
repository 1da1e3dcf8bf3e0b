/**
 * Named volumes through the remote cache: store A's service writes into a named volume,
 * `hd down` snapshots it, `hd cache push --volumes` uploads it; a fresh store B with a copy of the
 * project runs `hd cache pull --volumes`, and its service (on `hd up`) serves A's data. Through a
 * docker-registry and through s3rver. Plus the pure decisions: the tag, and what a pull does.
 * @module
 */
import { assert, assertEquals } from "../_assert.ts";
import { hd, skipUnless, tempDir, testIf } from "../_helpers.ts";
import { getWanted } from "./_http.ts";
import { freePort } from "../oci/_fixtures.ts";
import { startS3 } from "../remote/_fixtures.ts";
import { imageRegistry, serviceImageLayers } from "../sandbox/_image.ts";
import { Store } from "../../src/cas/store.ts";
import { volumeKey, volumeTag } from "../../src/remote/wire.ts";
import { volumePullAction } from "../../src/runtime/remote_volumes.ts";
import { exists } from "../../src/sys/fs.ts";

Deno.test("volumeTag: readable, unambiguous, a valid tag of at most 128 characters", () => {
  const t = volumeTag("app", "data");
  assert(t.startsWith("volume-app-data-"), t);
  assertEquals(t, `volume-app-data-${volumeKey("app", "data").slice(0, 12)}`);
  // the same readable part, two volumes: the key keeps them apart
  assert(volumeTag("a-b", "c") !== volumeTag("a", "b-c"));
  const long = volumeTag("e".repeat(120), "v".repeat(120));
  assert(long.length <= 128, `${long.length}`);
  for (const x of [t, long]) assert(/^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/.test(x), x);
});

Deno.test("volumePullAction: a pull never replaces a volume this machine has", () => {
  const T = "a".repeat(64), U = "b".repeat(64);
  const table: [boolean, string | null, string | null, string][] = [
    [false, null, null, "missing"],
    [true, T, null, "missing"],
    [false, null, T, "restore"],
    [false, T, T, "same"],
    [true, T, T, "same"],
    [true, null, T, "keep-local"], // a directory never snapshotted: local data
    [false, U, T, "keep-local"], // a snapshot of other data (its directory removed)
    [true, U, T, "keep-local"],
  ];
  for (const [dir, local, remote, want] of table) {
    assertEquals(volumePullAction(dir, local, remote), want, `${dir} ${local} ${remote}`);
  }
});

const skip = skipUnless({
  root: true,
  commands: ["runc", "unshare", "setpriv", "docker-registry", "skopeo", "setsid"],
  paths: ["/bin/busybox", "/usr/bin/tini-static"],
});

const get = (url: string, ms = 20_000) => getWanted(url, undefined, ms);

function project(dir: string, image: string, port: number): void {
  Deno.mkdirSync(dir, { recursive: true });
  const script = [
    "[ -f /srv/first ] || cat /proc/sys/kernel/random/uuid > /srv/first",
    "chmod 0750 /srv",
    `exec httpd -f -p 127.0.0.1:${port} -h /srv`,
  ].join("; ");
  Deno.writeTextFileSync(
    `${dir}/hd.toml`,
    `[environment]
name = "e2e-rvol"

[services.db]
image = "${image}"
command = ${JSON.stringify(["sh", "-c", script])}
volumes = ["data:/srv"]
port = ${port}
`,
  );
}

async function shareVolume(
  root: string,
  image: string,
  cache: string,
  env: Record<string, string>,
) {
  const port = freePort();
  const a = { store: `${root}/storeA`, cwd: `${root}/projA`, env };
  const b = { store: `${root}/storeB`, cwd: `${root}/projB`, env };
  project(a.cwd, image, port);
  project(b.cwd, image, port);
  const url = `http://127.0.0.1:${port}/first`;
  try {
    let r = await hd(["up", "-d"], a);
    assertEquals(r.code, 0, r.stderr + r.stdout);
    const first = await get(url);
    assert(/^[0-9a-f-]{36}\n$/.test(first), first);
    assertEquals((await hd(["down"], a)).code, 0);
    const tree = Store.open(a.store).getRef("volumes/e2e-rvol/data");
    assert(tree, "hd down left no snapshot");

    r = await hd(["cache", "push", "--volumes", "--cache", cache, "--json"], a);
    assertEquals(r.code, 0, r.stderr + r.stdout);
    const pushed = JSON.parse(r.stdout).volumes;
    assertEquals(pushed.length, 1, r.stdout);
    assertEquals(pushed[0].tag, volumeTag("e2e-rvol", "data"));
    assertEquals(pushed[0].tree, tree);
    // again: nothing new goes up
    r = await hd(["cache", "push", "--volumes", "--cache", cache, "--json"], a);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(JSON.parse(r.stdout).volumes[0].uploaded, 0);

    // B lists it (remote, not local), then pulls it
    r = await hd(["cache", "ls", "--volumes", "--cache", cache, "--json"], b);
    assertEquals(r.code, 0, r.stderr);
    const ls = JSON.parse(r.stdout);
    assertEquals(ls.volumes, [{
      name: "data",
      tag: volumeTag("e2e-rvol", "data"),
      remote: true,
      local: null,
    }]);
    assertEquals(ls.otherVolumes, 0);
    // B: the pull sets the ref (no directory yet); hd up checks it out; the service sees A's data
    r = await hd(["cache", "pull", "--volumes", "--cache", cache, "--json"], b);
    assertEquals(r.code, 0, r.stderr + r.stdout);
    const pulled = JSON.parse(r.stdout).volumes;
    assertEquals(pulled.map((v: { action: string }) => v.action), ["restore"], r.stdout);
    assertEquals(Store.open(b.store).getRef("volumes/e2e-rvol/data"), tree);
    assert(!exists(`${b.store}/volumes/e2e-rvol/data`));
    r = await hd(["cas", "verify"], b);
    assertEquals(r.code, 0, r.stderr + r.stdout);

    r = await hd(["up", "-d"], b);
    assertEquals(r.code, 0, r.stderr + r.stdout);
    assertEquals(await get(url), first, "B's service sees A's volume");
    assertEquals(Deno.statSync(`${b.store}/volumes/e2e-rvol/data`).mode! & 0o7777, 0o750);
    assertEquals((await hd(["down"], b)).code, 0);

    // a second pull keeps what B has now (its directory), never overwrites it
    r = await hd(["cache", "pull", "--volumes", "--cache", cache, "--json"], b);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(JSON.parse(r.stdout).volumes[0].action, "same");
    Deno.writeTextFileSync(`${b.store}/volumes/e2e-rvol/data/first`, "B's own\n");
    assertEquals((await hd(["down"], b)).code, 0);
    r = await hd(["cache", "pull", "--volumes", "--cache", cache], b);
    assertEquals(r.code, 0, r.stderr);
    assert(r.stdout.includes("kept this machine's"), r.stdout);
    assertEquals(Deno.readTextFileSync(`${b.store}/volumes/e2e-rvol/data/first`), "B's own\n");
  } finally {
    await hd(["down", "-v"], a);
    await hd(["down", "-v"], b);
  }
}

testIf(skip, "e2e: a volume pushed by store A is pulled by store B (docker-registry)", async () => {
  using tmp = tempDir();
  const { reg, ref } = await imageRegistry(tmp.path, serviceImageLayers(), "rvol", {
    Env: ["PATH=/bin"],
  });
  try {
    await shareVolume(tmp.path, ref, `${reg.host}/team/hd-cache`, {});
  } finally {
    await reg.stop();
  }
});

testIf(skip, "e2e: the same through s3rver", async () => {
  using tmp = tempDir();
  const { reg, ref } = await imageRegistry(tmp.path, serviceImageLayers(), "rvol", {
    Env: ["PATH=/bin"],
  });
  const s3 = await startS3(tmp.path);
  try {
    await shareVolume(tmp.path, ref, `s3://${s3.bucket}/team`, s3.env);
  } finally {
    await s3.stop();
    await reg.stop();
  }
});
