/**
 * Test images for the sandbox tests: a busybox root filesystem (Debian's busybox-static) in two
 * layers — the second deletes a file (an OCI whiteout) and makes a directory opaque — written as an
 * OCI layout and pushed by skopeo to a real docker-registry on 127.0.0.1.
 * @module
 */
import {
  makeTar,
  type Registry,
  startRegistry,
  type TarSpec,
  writeLayout,
} from "../oci/_fixtures.ts";

/** Applets linked in /bin. */
export const APPLETS = [
  "sh",
  "ls",
  "cat",
  "echo",
  "mkdir",
  "rm",
  "touch",
  "id",
  "hostname",
  "ps",
  "sleep",
  "wget",
  "httpd",
  "mount",
  "env",
  "pwd",
  "test",
  "grep",
  "wc",
  "head",
  "sed",
  "ip",
  "nc",
  "kill",
  "true",
  "false",
  "stat",
  "cp",
  "mv",
  "readlink",
  "chmod",
  "date",
  "tail",
  "seq",
];

/** The two layers of the busybox test image. */
export function busyboxLayers(): TarSpec[][] {
  const bb = Deno.readFileSync("/bin/busybox");
  const l1: TarSpec[] = [
    { path: "bin/", type: "dir" },
    { path: "bin/busybox", data: bb, mode: 0o755 },
    ...APPLETS.map((a): TarSpec => ({ path: `bin/${a}`, type: "symlink", link: "busybox" })),
    { path: "etc/", type: "dir" },
    { path: "etc/passwd", data: "root:x:0:0:root:/root:/bin/sh\n" },
    { path: "etc/group", data: "root:x:0:\n" },
    { path: "etc/gone", data: "deleted by layer 2\n" },
    { path: "opt/", type: "dir" },
    { path: "opt/old/", type: "dir" },
    { path: "opt/old/a", data: "hidden by the opaque marker\n" },
    { path: "root/", type: "dir", mode: 0o700 },
    { path: "var/www/", type: "dir" },
    { path: "var/www/index.html", data: "hello from the image\n" },
  ];
  const l2: TarSpec[] = [
    { path: "etc/", type: "dir" },
    { path: "etc/.wh.gone" },
    { path: "opt/old/", type: "dir" },
    { path: "opt/old/.wh..wh..opq" },
    { path: "opt/old/b", data: "new\n" },
    { path: "etc/motd", data: "layer 2\n" },
  ];
  return [l1, l2];
}

async function run(cmd: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/**
 * A busybox image for services: users `www` (uid 33, group `www` 33, also in `web` 82) and
 * `app` (1000), and an image config with `config` (Env, WorkingDir, User, Entrypoint, Cmd).
 */
export function serviceImageLayers(): TarSpec[][] {
  const [l1, l2] = busyboxLayers();
  const l3: TarSpec[] = [
    { path: "etc/", type: "dir" },
    {
      path: "etc/passwd",
      data: "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33:www:/var/www:/bin/sh\n" +
        "app:x:1000:1000:app:/home/app:/bin/sh\n",
    },
    { path: "etc/group", data: "root:x:0:\nwww:x:33:\nweb:x:82:www\napp:x:1000:\n" },
    { path: "srv/", type: "dir" },
    { path: "srv/index.html", data: "hello from /srv\n" },
  ];
  return [l1, l2, l3];
}

/** A registry on 127.0.0.1 holding `busybox:1`; returns it and the image reference. */
export async function busyboxRegistry(dir: string): Promise<{ reg: Registry; ref: string }> {
  return await imageRegistry(dir, busyboxLayers());
}

/**
 * A registry on 127.0.0.1 holding an image made of `layers` (lowest first) as `<name>:1`; returns
 * it and the image reference.
 */
export async function imageRegistry(
  dir: string,
  layers: TarSpec[][],
  name = "busybox",
  config?: Record<string, unknown>,
): Promise<{ reg: Registry; ref: string }> {
  const layout = `${dir}/layout-${name}`;
  writeLayout(layout, "1", layers.map((l) => ({ tar: makeTar(l) })), config);
  const reg = await startRegistry(dir);
  const ref = `${reg.host}/${name}:1`;
  await run("skopeo", ["copy", "--dest-tls-verify=false", `oci:${layout}:1`, `docker://${ref}`]);
  return { reg, ref };
}
