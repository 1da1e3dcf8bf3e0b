/**
 * `hd export` end to end, checked with real tools: a busybox base image on a docker-registry on
 * 127.0.0.1, a build step that writes, deletes (a whiteout) and sets a setuid bit, a service.
 * - to an OCI layout: `skopeo inspect` accepts it (config: Env, WorkingDir, ExposedPorts, Cmd);
 *   `umoci unpack` gives a root equal to the environment's (base + step layers merged, the
 *   project at /app); a second export (to another layout) has the same manifest digest;
 * - to a docker archive: `skopeo inspect docker-archive:` accepts it, `hd pull` reads it;
 * - to the registry: the same digest, base layers mounted (not uploaded), pulled back by
 *   `hd pull` (same rootfs) and `skopeo copy`; after a one-file edit a push adds exactly three
 *   blobs on the registry (the project layer, the config, the manifest);
 * - podman runs the image (runc, cgroupfs, explicit ulimits) when this machine lets it.
 * @module
 */
import { createHash } from "node:crypto";
import { assert, assertEquals } from "../_assert.ts";
import { hd, skipUnless, tempDir, testIf } from "../_helpers.ts";
import { busyboxLayers, busyboxRegistry, imageRegistry } from "../sandbox/_image.ts";
import { run, startRegistry } from "./_fixtures.ts";
import { Store } from "../../src/cas/store.ts";
import { getNode, readFileContent } from "../../src/dag/dag.ts";
import { MemDir, Tree } from "../../src/dag/tree.ts";
import type { FileNode } from "../../src/dag/node.ts";
import { mergeLayer } from "../../src/oci/unpack.ts";
import { prepareEnv, unmountEnv } from "../../src/runtime/sandbox_steps.ts";
import { loadSpec } from "../../src/config/parse.ts";
import { S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from "../../src/sys/mode.ts";

/** A version-2 security.capability value (cap_net_raw, permitted and effective). */
const CAP = new Uint8Array([
  0x01,
  0x00,
  0x00,
  0x02,
  0x00,
  0x20,
  0x00,
  0x00,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
]);

const skip = skipUnless({
  root: true,
  commands: ["runc", "unshare", "setpriv", "docker-registry", "skopeo", "umoci"],
  paths: ["/bin/busybox", "/usr/bin/tini-static"],
});

function project(dir: string, ref: string): void {
  Deno.mkdirSync(`${dir}/src`, { recursive: true });
  Deno.writeTextFileSync(`${dir}/src/msg.txt`, "one\n");
  Deno.writeTextFileSync(`${dir}/src/big.txt`, "x".repeat(100_000));
  Deno.writeTextFileSync(
    `${dir}/hd.toml`,
    `[environment]
name = "exp"
base = "${ref}"
env = { GREETING = "hi" }

[build]
steps = [
  { run = "mkdir -p /opt/built && echo built > /opt/built/a && chmod 4755 /opt/built/a && rm /var/www/index.html && ln -s a /opt/built/l", inputs = [] },
]

[services.web]
command = "httpd -f -p 8080 -h /app"
port = 8080
`,
  );
}

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex").slice(0, 16);

/** path, type, mode, uid, gid, size/target, content hash — of a CAS tree. */
function listTree(store: Store, root: MemDir): string[] {
  const out: string[] = [];
  const walk = (d: MemDir, at: string) => {
    for (const [name, e] of [...d.entries].sort(([a], [b]) => a < b ? -1 : 1)) {
      const p = `${at}/${name}`;
      if (e instanceof MemDir) {
        e.entries; // a lazy dir learns its mode and owner when loaded
        out.push(`${p} d ${(e.mode & 0o7777).toString(8)} ${e.meta.uid ?? 0}:${e.meta.gid ?? 0}`);
        walk(e, p);
        continue;
      }
      const f = e as FileNode;
      const t = f.mode & S_IFMT;
      const own = `${f.uid ?? 0}:${f.gid ?? 0}`;
      if (t === S_IFLNK) out.push(`${p} l ${own} ${f.target}`);
      else if (t === S_IFREG) {
        out.push(
          `${p} f ${(f.mode & 0o7777).toString(8)} ${own} ${f.size} ${
            sha(readFileContent(store, f))
          }`,
        );
      } else out.push(`${p} s ${(f.mode & 0o7777).toString(8)} ${own} ${f.rdev ?? 0}`);
    }
  };
  walk(root, "");
  return out;
}

/** The same listing of a directory on disk. */
function listDisk(dir: string): string[] {
  const out: string[] = [];
  const walk = (abs: string, at: string) => {
    for (const name of [...Deno.readDirSync(abs)].map((e) => e.name).sort()) {
      const p = `${at}/${name}`;
      const a = `${abs}/${name}`;
      const st = Deno.lstatSync(a);
      const t = st.mode! & S_IFMT;
      const own = `${st.uid}:${st.gid}`;
      if (t === S_IFDIR) {
        out.push(`${p} d ${(st.mode! & 0o7777).toString(8)} ${own}`);
        walk(a, p);
      } else if (t === S_IFLNK) out.push(`${p} l ${own} ${Deno.readLinkSync(a)}`);
      else if (t === S_IFREG) {
        out.push(
          `${p} f ${(st.mode! & 0o7777).toString(8)} ${own} ${st.size} ${
            sha(Deno.readFileSync(a))
          }`,
        );
      } else out.push(`${p} s ${(st.mode! & 0o7777).toString(8)} ${own} ${st.rdev ?? 0}`);
    }
  };
  walk(dir, "");
  return out;
}

function blobCount(storage: string): number {
  let n = 0;
  const walk = (d: string) => {
    for (const e of Deno.readDirSync(d)) {
      if (e.isDirectory) walk(`${d}/${e.name}`);
      else if (e.name === "data") n++;
    }
  };
  walk(`${storage}/docker/registry/v2/blobs`);
  return n;
}

interface Exported {
  digest: string;
  blobsUploaded: number;
  bytesWritten: number;
  layers: { how: string; push?: string; label: string; size: number }[];
}

testIf(
  skip,
  "hd export: layout, archive, registry; checked by skopeo, umoci, hd pull",
  async () => {
    using tmp = tempDir("hd-export-");
    const { reg, ref } = await busyboxRegistry(tmp.path);
    const store = `${tmp.path}/store`;
    const dir = `${tmp.path}/proj`;
    project(dir, ref);
    let stopped = false;
    try {
      const ex = async (to: string, env?: Record<string, string>): Promise<Exported> => {
        const r = await hd(["export", "--to", to, "--json"], { store, cwd: dir, env });
        assertEquals(r.code, 0, r.stderr);
        return JSON.parse(r.stdout);
      };
      // --- OCI layout
      const a = await ex(`oci:${tmp.path}/lay:1`);
      assert(/^sha256:[0-9a-f]{64}$/.test(a.digest));
      assertEquals(a.layers.map((l) => l.how), ["reused", "reused", "built", "built"]);
      const b = await ex(`oci:${tmp.path}/lay2:1`);
      assertEquals(b.digest, a.digest, "two exports, the same manifest digest");
      const insp = JSON.parse(await run("skopeo", ["inspect", `oci:${tmp.path}/lay:1`]));
      assertEquals(insp.Digest, a.digest);
      assertEquals(insp.Layers.length, 4);
      const cfg = JSON.parse(await run("skopeo", ["inspect", "--config", `oci:${tmp.path}/lay:1`]));
      assertEquals(cfg.config.WorkingDir, "/app");
      assertEquals(cfg.config.Cmd, ["httpd -f -p 8080 -h /app"]);
      assertEquals(cfg.config.Entrypoint, ["/bin/sh", "-c"]);
      assertEquals(Object.keys(cfg.config.ExposedPorts), ["8080/tcp"]);
      assert(cfg.config.Env.includes("GREETING=hi"), cfg.config.Env.join(" "));
      assertEquals(cfg.created, "1970-01-01T00:00:00Z");

      // --- umoci: the unpacked root equals the environment's root
      await run("umoci", ["unpack", "--image", `${tmp.path}/lay:1`, `${tmp.path}/bundle`]);
      const s = Store.open(store, { create: false });
      const spec = loadSpec(`${dir}/hd.toml`);
      const env = await prepareEnv(s, spec);
      const root = new Tree();
      for (const id of env.layers) mergeLayer(s, root, Tree.load(s, id));
      const proj = new Tree();
      const app = MemDir.lazy(env.compiled.filesRoot, s);
      proj.root.entries.set("app", app);
      app.entries; // load
      app.mode = S_IFDIR | 0o755;
      mergeLayer(s, root, proj);
      const want = listTree(s, root.root);
      const got = listDisk(`${tmp.path}/bundle/rootfs`);
      const onlyGot = got.filter((l) => !want.includes(l));
      const onlyWant = want.filter((l) => !got.includes(l));
      assertEquals({ onlyGot, onlyWant }, { onlyGot: [], onlyWant: [] }, "umoci's root = env root");
      assertEquals(got, want, "umoci's root is the environment's root");
      assert(want.some((l) => l.startsWith("/opt/built/a f 4755")), "setuid kept");
      assert(!want.some((l) => l.startsWith("/var/www/index.html")), "the step's delete applied");
      assert(want.some((l) => l.startsWith("/app/src/msg.txt f")), "project at /app");
      getNode(s, env.compiled.filesRoot);

      // --- SOURCE_DATE_EPOCH: another digest, the same one twice
      const e1 = await ex(`oci:${tmp.path}/lay3:1`, { SOURCE_DATE_EPOCH: "1700000000" });
      const e2 = await ex(`oci:${tmp.path}/lay4:1`, { SOURCE_DATE_EPOCH: "1700000000" });
      assert(e1.digest !== a.digest);
      assertEquals(e2.digest, e1.digest);

      // --- bad destinations: a clear error, nothing written
      const bad = await hd(["export", "--to", "oci:"], { store, cwd: dir });
      assertEquals(bad.code, 2, bad.stderr);
      assert(bad.stderr.includes("Cannot parse"), bad.stderr);
      const gone = await hd(["export", "--to", "127.0.0.1:1/x:1"], { store, cwd: dir });
      assert(gone.code !== 0 && gone.stderr.includes("Cannot push"), gone.stderr);

      // --- docker archive
      const arch = await ex(`docker-archive:${tmp.path}/img.tar:exp:1`);
      const ai = JSON.parse(await run("skopeo", ["inspect", `docker-archive:${tmp.path}/img.tar`]));
      const arch2 = await ex(`docker-archive:${tmp.path}/img2.tar:exp:1`);
      assertEquals(arch2.digest, arch.digest);
      assertEquals(
        sha(Deno.readFileSync(`${tmp.path}/img2.tar`)),
        sha(Deno.readFileSync(`${tmp.path}/img.tar`)),
        "two archives of the same environment are the same bytes",
      );
      assertEquals(ai.Layers.length, 4);
      assert(arch.digest.startsWith("sha256:"));
      const pa = await hd(["pull", `docker-archive:${tmp.path}/img.tar`, "--json"], {
        store: `${tmp.path}/store-b`,
      });
      assertEquals(pa.code, 0, pa.stderr);

      // --- registry push: same digest, base layers mounted from the base repository
      const dest = `${reg.host}/team/exp:1`;
      const before = blobCount(reg.storage);
      const p1 = await ex(dest);
      assertEquals(p1.digest, a.digest, "a push has the layout's digest");
      assertEquals(p1.layers.slice(0, 2).map((l) => l.push), ["mounted", "mounted"]);
      assertEquals(blobCount(reg.storage) - before, 4, "2 built layers, config, manifest");
      const pull = await hd(["pull", dest, "--json"], { store: `${tmp.path}/store-c` });
      assertEquals(pull.code, 0, pull.stderr);
      assertEquals(
        JSON.parse(pull.stdout).manifestDigest ?? JSON.parse(pull.stdout).digest,
        a.digest,
      );
      await run("skopeo", [
        "copy",
        "--src-tls-verify=false",
        `docker://${dest}`,
        `oci:${tmp.path}/copied:1`,
      ]);

      // --- a one-file edit: one small layer goes up (with a new config and manifest)
      Deno.writeTextFileSync(`${dir}/src/msg.txt`, "two\n");
      const before2 = blobCount(reg.storage);
      const p2 = await ex(dest);
      assert(p2.digest !== p1.digest);
      assertEquals(p2.layers.map((l) => l.push), ["present", "present", "present", "uploaded"]);
      assertEquals(p2.blobsUploaded, 2, "the project layer and the config");
      assertEquals(blobCount(reg.storage) - before2, 3, "layer, config, manifest on the registry");
      console.log(
        `one-file edit: ${p2.bytesWritten} bytes uploaded (project layer ${
          p2.layers[3].size
        } bytes; step layer ${p2.layers[2].size}; first push ${p1.bytesWritten})`,
      );

      // --- another registry, empty: base layers streamed from the base's registry, the same digest
      const reg2 = await startRegistry(`${tmp.path}/reg2`);
      try {
        const o = await ex(`${reg2.host}/other/exp:1`);
        assertEquals(o.digest, p2.digest, "the same image on another registry");
        assertEquals(o.layers.map((l) => l.push), ["uploaded", "uploaded", "uploaded", "uploaded"]);
        const back = await hd(["pull", `${reg2.host}/other/exp:1`], {
          store: `${tmp.path}/store-d`,
        });
        assertEquals(back.code, 0, back.stderr);
      } finally {
        await reg2.stop();
      }

      // --- the base image's registry is gone: base layers are written from the store instead,
      // and the root is still the environment's
      await reg.stop();
      stopped = true;
      Deno.writeTextFileSync(`${dir}/src/msg.txt`, "one\n"); // the project as `want` has it
      const fb = await ex(`oci:${tmp.path}/lay5:1`);
      assertEquals(fb.layers.map((l) => l.how).slice(0, 2), ["built", "built"]);
      assert(fb.digest !== a.digest);
      await run("umoci", ["unpack", "--image", `${tmp.path}/lay5:1`, `${tmp.path}/bundle5`]);
      assertEquals(
        listDisk(`${tmp.path}/bundle5/rootfs`),
        want,
        "re-emitted base layers: same root",
      );

      // --- podman runs it, where this machine lets it
      if (!skipUnless({ commands: ["podman"] })) {
        const pm = await new Deno.Command("podman", {
          args: [
            "--runtime",
            "runc",
            "--cgroup-manager",
            "cgroupfs",
            "--root",
            `${tmp.path}/podman`,
            "--runroot",
            `${tmp.path}/podman-run`,
            "run",
            "--rm",
            "--network",
            "none",
            "--ulimit",
            "nofile=20000:20000",
            "--ulimit",
            "nproc=4096:4096",
            "--entrypoint",
            "/bin/cat",
            `oci:${tmp.path}/lay:1`,
            "/app/src/msg.txt",
            "/opt/built/a",
          ],
          stdout: "piped",
          stderr: "piped",
        }).output();
        const err = new TextDecoder().decode(pm.stderr);
        if (pm.success) {
          assertEquals(new TextDecoder().decode(pm.stdout), "one\nbuilt\n");
          console.log("podman (runc, cgroupfs) ran the exported image");
        } else console.log(`podman could not run the image here (skipped): ${err.slice(-400)}`);
      }
    } finally {
      unmountEnv(loadSpec(`${dir}/hd.toml`));
      if (!stopped) await reg.stop();
    }
  },
);

testIf(
  skipUnless({
    root: true,
    commands: ["runc", "unshare", "setpriv", "docker-registry", "skopeo", "umoci", "getfattr"],
    paths: ["/bin/busybox", "/usr/bin/tini-static"],
  }),
  "hd export: base layers written from the store keep hardlinks, xattrs, owners (umoci unpack)",
  async () => {
    using tmp = tempDir("hd-export-links-");
    const layers = busyboxLayers();
    layers.push([
      { path: "srv/", type: "dir", uid: 1000, gid: 1000, mode: 0o750 },
      { path: "srv/a", data: "linked\n", uid: 1000, gid: 1000, mode: 0o640 },
      { path: "srv/b", type: "hardlink", link: "srv/a" },
      { path: "srv/x", data: "x", xattrs: { "user.note": "kept" } },
      { path: "srv/cap", data: "c", mode: 0o755, xattrs: { "security.capability": CAP } },
    ]);
    const { reg, ref } = await imageRegistry(tmp.path, layers, "links");
    const store = `${tmp.path}/store`;
    const dir = `${tmp.path}/proj`;
    Deno.mkdirSync(dir);
    Deno.writeTextFileSync(`${dir}/hd.toml`, `[environment]\nname = "links"\nbase = "${ref}"\n`);
    let stopped = false;
    try {
      const pulled = await hd(["pull", ref], { store });
      assertEquals(pulled.code, 0, pulled.stderr);
      await reg.stop(); // the original blobs are out of reach: every layer is written by hd
      stopped = true;
      const r = await hd(["export", "--to", `oci:${tmp.path}/lay:1`, "--json"], {
        store,
        cwd: dir,
      });
      assertEquals(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout) as Exported;
      assertEquals(out.layers.map((l) => l.how), ["built", "built", "built", "built"]);
      await run("umoci", ["unpack", "--image", `${tmp.path}/lay:1`, `${tmp.path}/b`]);
      const root = `${tmp.path}/b/rootfs`;
      const a = Deno.statSync(`${root}/srv/a`);
      assertEquals(a.ino, Deno.statSync(`${root}/srv/b`).ino, "a hardlink stays a hardlink");
      assertEquals([a.uid, a.gid, a.mode! & 0o7777], [1000, 1000, 0o640]);
      const d = Deno.statSync(`${root}/srv`);
      assertEquals([d.uid, d.gid, d.mode! & 0o7777], [1000, 1000, 0o750]);
      const note = await run("getfattr", ["-n", "user.note", "--only-values", `${root}/srv/x`]);
      assertEquals(note, "kept");
      const cap = await run("getfattr", [
        "-n",
        "security.capability",
        "-e",
        "hex",
        `${root}/srv/cap`,
      ]);
      assert(cap.includes("0x" + [...CAP].map((b) => b.toString(16).padStart(2, "0")).join("")));
      assert(!Deno.statSync(`${root}/var/www`).isFile);
      let gone = false;
      try {
        Deno.statSync(`${root}/etc/gone`);
      } catch {
        gone = true;
      }
      assert(gone, "the base image's own whiteout is applied");
    } finally {
      unmountEnv(loadSpec(`${dir}/hd.toml`));
      if (!stopped) await reg.stop();
    }
  },
);
