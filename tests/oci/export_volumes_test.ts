/**
 * `hd export --volumes`: a service of a busybox-based environment writes into a named volume
 * mounted on /srv (where the image has files), deletes one of the image's files there and
 * changes the directory's mode; `hd down` stores the volume; the export adds it as a last layer
 * at /srv, and `umoci unpack` gives a root whose /srv is the volume exactly (the image's file
 * hidden by the opaque whiteout, the mode kept, lower layers intact); the same export twice gives
 * the same digest. Without a snapshot, or without a service, a one-line error and nothing written.
 * @module
 */
import { assert, assertEquals } from "../_assert.ts";
import { hd, skipUnless, tempDir, testIf } from "../_helpers.ts";
import { imageRegistry, serviceImageLayers } from "../sandbox/_image.ts";
import { freePort, run } from "./_fixtures.ts";
import { volumeLayers } from "../../src/cli/export.ts";
import { parseSpec } from "../../src/config/parse.ts";
import { exists } from "../../src/sys/fs.ts";
import { HdError } from "../../src/sys/errors.ts";

Deno.test("volumeLayers: the service's named volumes at their targets, or a clear error", () => {
  const spec = parseSpec(
    `[environment]\nname = "v"\nbase = "b"\n[services.db]\ncommand = "x"\n` +
      `volumes = ["data:/var/lib/db/", "./conf:/conf", { type = "tmpfs", target = "/t" }, "/anon"]\n`,
    "/p/hd.toml",
  );
  const db = spec.services.db;
  const T = "c".repeat(64);
  assertEquals(volumeLayers("v", db, (n) => n === "data" ? T : null), [
    { label: "volume data at /var/lib/db", tree: T, prefix: "var/lib/db/", volume: true },
  ]);
  const img = parseSpec(
    `[environment]\nname = "v"\nbase = "b"\n[services.pg]\nimage = "postgres"\n` +
      `volumes = ["data:/var/lib/db"]\n`,
    "/p/hd.toml",
  ).services.pg;
  for (
    const [svc, snap, want] of [
      [null, () => T, /no service is chosen/],
      [img, () => T, /it runs its own image \(postgres\), not the environment/],
      [db, () => null, /the store has no snapshot of it \(ref volumes\/v\/data\)/],
    ] as const
  ) {
    try {
      volumeLayers("v", svc, snap);
      throw new Error("no error");
    } catch (e) {
      assert(e instanceof HdError && want.test(e.message), String(e));
      assert(!e.message.includes("\n"));
    }
  }
});

testIf(
  skipUnless({
    root: true,
    commands: ["runc", "unshare", "setpriv", "docker-registry", "skopeo", "umoci"],
    paths: ["/bin/busybox", "/usr/bin/tini-static"],
  }),
  "hd export --volumes: the volume's snapshot at its target (umoci unpack)",
  async () => {
    using tmp = tempDir("hd-export-vol-");
    const { reg, ref } = await imageRegistry(tmp.path, serviceImageLayers(), "vol", {
      Env: ["PATH=/bin"],
    });
    const store = `${tmp.path}/store`;
    const dir = `${tmp.path}/proj`;
    Deno.mkdirSync(dir, { recursive: true });
    const port = freePort();
    const script = [
      "rm -f /srv/index.html",
      "echo from-the-service > /srv/written",
      "mkdir -p /srv/sub && echo deep > /srv/sub/f",
      "chmod 0750 /srv",
      `exec httpd -f -p 127.0.0.1:${port} -h /srv`,
    ].join("; ");
    Deno.writeTextFileSync(
      `${dir}/hd.toml`,
      `[environment]
name = "exp-vol"
base = "${ref}"

[services.web]
command = ${JSON.stringify(script)}
volumes = ["data:/srv"]
port = ${port}
`,
    );
    const o = { store, cwd: dir };
    try {
      // no snapshot yet: one line, exit 1, no layout
      let r = await hd(["export", "--volumes", "--to", `oci:${tmp.path}/none:1`], o);
      assertEquals(r.code, 1, r.stderr);
      assert(r.stderr.includes('Cannot export volume "data" of service "web"'), r.stderr);
      assert(!exists(`${tmp.path}/none`), "nothing is written");

      r = await hd(["up", "-d"], o);
      assertEquals(r.code, 0, r.stderr + r.stdout);
      let served = "";
      for (let i = 0; i < 400 && served === ""; i++) {
        try {
          const res = await fetch(`http://127.0.0.1:${port}/written`);
          served = res.ok ? await res.text() : (await res.body?.cancel(), "");
        } catch { /* not yet */ }
        if (served === "") await new Promise((res) => setTimeout(res, 50));
      }
      assertEquals(served, "from-the-service\n");
      r = await hd(["down"], o);
      assertEquals(r.code, 0, r.stderr + r.stdout);

      const ex = async (to: string, vol: boolean) => {
        const r = await hd(["export", ...(vol ? ["--volumes"] : []), "--to", to, "--json"], o);
        assertEquals(r.code, 0, r.stderr);
        return JSON.parse(r.stdout) as { digest: string; layers: { label: string }[] };
      };
      const a = await ex(`oci:${tmp.path}/lay:1`, true);
      assertEquals(a.layers.at(-1)!.label, "volume data at /srv");
      const b = await ex(`oci:${tmp.path}/lay2:1`, true);
      assertEquals(b.digest, a.digest, "the same export twice, the same digest");
      const plain = await ex(`oci:${tmp.path}/lay3:1`, false);
      assertEquals(plain.layers.length, a.layers.length - 1);

      await run("umoci", ["unpack", "--image", `${tmp.path}/lay:1`, `${tmp.path}/bundle`]);
      const root = `${tmp.path}/bundle/rootfs`;
      assertEquals(Deno.readTextFileSync(`${root}/srv/written`), "from-the-service\n");
      assertEquals(Deno.readTextFileSync(`${root}/srv/sub/f`), "deep\n");
      assert(!exists(`${root}/srv/index.html`), "the image's file the service deleted is hidden");
      assertEquals(Deno.statSync(`${root}/srv`).mode! & 0o7777, 0o750);
      assert(exists(`${root}/bin/busybox`) && exists(`${root}/etc/passwd`), "lower layers kept");
      // without --volumes the image's own /srv is there
      await run("umoci", ["unpack", "--image", `${tmp.path}/lay3:1`, `${tmp.path}/bundle3`]);
      assertEquals(
        Deno.readTextFileSync(`${tmp.path}/bundle3/rootfs/srv/index.html`),
        "hello from /srv\n",
      );
      assert(!exists(`${tmp.path}/bundle3/rootfs/srv/written`));
    } finally {
      await hd(["down", "-v"], o);
      await reg.stop();
    }
  },
);
