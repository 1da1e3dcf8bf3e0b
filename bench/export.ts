/**
 * `hd export` beside skopeo and podman, on examples/node-app (Express in a Debian image built by
 * debootstrap, on a docker-registry on 127.0.0.1 reached through a byte-counting TCP proxy, so
 * every tool's upload is measured the same way, on the wire):
 *
 * - push of the exported app image to a new repository: `hd export --to REG/…` (base layers
 *   cross-repo mounted, the rest uploaded) vs `skopeo copy` of the same image (from the layout hd
 *   wrote, and registry-to-registry);
 * - after a one-file edit (src/message.js): `hd export` push again vs `podman build` (a good
 *   Dockerfile order, layers cached) + `podman push` to the same registry.
 * @module
 */
import { type Bench, type BenchRow, sh } from "./lib.ts";
import { debianRootfs, rootfsLayout } from "../tests/sandbox/_debian.ts";
import { startRegistry } from "../tests/oci/_fixtures.ts";

const REPO = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** A TCP proxy on 127.0.0.1 to `target`, counting bytes sent to the target. */
function countingProxy(target: string): { host: string; up: () => number; close: () => void } {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [h, p] = target.split(":");
  let up = 0;
  const conns = new Set<Deno.Conn>();
  (async () => {
    for await (const c of l) {
      conns.add(c);
      (async () => {
        let s: Deno.Conn;
        try {
          s = await Deno.connect({ hostname: h, port: Number(p) });
        } catch {
          c.close();
          return;
        }
        conns.add(s);
        const count = new TransformStream<Uint8Array, Uint8Array>({
          transform(chunk, ctl) {
            up += chunk.length;
            ctl.enqueue(chunk);
          },
        });
        await Promise.allSettled([
          c.readable.pipeThrough(count).pipeTo(s.writable),
          s.readable.pipeTo(c.writable),
        ]);
        conns.delete(c);
        conns.delete(s);
      })();
    }
  })().catch(() => {});
  return {
    host: `127.0.0.1:${(l.addr as Deno.NetAddr).port}`,
    up: () => up,
    close: () => {
      l.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
    },
  };
}

async function timed(line: string, cwd?: string): Promise<number> {
  const t = performance.now();
  await sh(line, { cwd });
  return performance.now() - t;
}

const DOCKERFILE = `FROM IMAGE
WORKDIR /app
COPY package.json package-lock.json ./
COPY vendor vendor
RUN npm ci --offline --no-audit --no-fund
COPY build.js ./
COPY public public
RUN node build.js
COPY src src
ENV NODE_ENV=development PORT=3000
CMD ["node", "src/server.js"]
`;

/** `hd export`. */
export const bench: Bench = {
  name: "export",
  async run({ workDir, log }) {
    const rows: BenchRow[] = [];
    const img = await debianRootfs();
    if ("skip" in img) {
      log(`export: skipped: ${img.skip}`);
      return rows;
    }
    const dir = `${workDir}/export`;
    await sh(`rm -rf ${dir} && mkdir -p ${dir}`);
    const reg = await startRegistry(dir);
    const proxy = countingProxy(reg.host);
    const R = proxy.host;
    const row = (c: string, tool: string, value: number, unit: string, extra = {}) => {
      rows.push({ bench: "export", case: c, tool, value, unit, extra });
      log(`${c} [${tool}]: ${value.toFixed(unit === "ms" ? 0 : 0)} ${unit}`);
    };
    try {
      await rootfsLayout(img.rootfs, `${dir}/layout`, "bookworm");
      const base = `${R}/hd-node:bookworm`;
      await sh(`skopeo copy --dest-tls-verify=false oci:${dir}/layout:bookworm docker://${base}`);
      const app = `${dir}/app`;
      await sh(`cp -r ${REPO}/examples/node-app ${app} && rm -rf ${app}/.hd ${app}/node_modules`);
      Deno.writeTextFileSync(
        `${app}/hd.toml`,
        Deno.readTextFileSync(`${app}/hd.toml`).replace("127.0.0.1:5000/hd-node:bookworm", base),
      );
      const store = `${dir}/store`;
      const hd = `HD_HOME=${store} NO_COLOR=1 ${Deno.execPath()} run -A --quiet ${REPO}/cli.ts`;
      // the environment built (pull, npm ci, build) and written once to a layout
      const prep = await timed(`${hd} export --to oci:${dir}/out:1 --json > ${dir}/prep.json`, app);
      const prepJson = JSON.parse(Deno.readTextFileSync(`${dir}/prep.json`));
      const imageBytes = prepJson.layers.reduce((n: number, l: { size: number }) => n + l.size, 0);
      row("build env + export to a layout (cold store)", "hd", prep, "ms", { imageBytes });

      // ---- a push of the app image to a new repository
      let u = proxy.up();
      const hdPush = await timed(`${hd} export --to ${R}/hd/app:1 --json > ${dir}/p1.json`, app);
      const hdUp = proxy.up() - u;
      row("push app image to a new repo", "hd export", hdPush, "ms", {
        uploaded: hdUp,
        imageBytes,
      });
      row("push app image: bytes sent", "hd export", hdUp, "bytes");
      u = proxy.up();
      const skLayout = await timed(
        `skopeo copy -q --dest-tls-verify=false oci:${dir}/out:1 docker://${R}/sk/app:1`,
      );
      const skUp = proxy.up() - u;
      row("push app image to a new repo", "skopeo (layout)", skLayout, "ms", { uploaded: skUp });
      row("push app image: bytes sent", "skopeo (layout)", skUp, "bytes");
      u = proxy.up();
      const skReg = await timed(
        `skopeo copy -q --src-tls-verify=false --dest-tls-verify=false ` +
          `docker://${R}/hd/app:1 docker://${R}/sk2/app:1`,
      );
      const skRegUp = proxy.up() - u;
      row("push app image to a new repo", "skopeo (reg→reg)", skReg, "ms", { uploaded: skRegUp });
      row("push app image: bytes sent", "skopeo (reg→reg)", skRegUp, "bytes");

      // ---- to a registry that has nothing yet (each tool its own): every byte goes up; hd
      // streams the base layers from the base image's registry, skopeo reads the layout
      for (
        const [tool, cmd] of [
          [
            "skopeo (layout)",
            (r: string) =>
              `skopeo copy -q --dest-tls-verify=false oci:${dir}/out:1 docker://${r}/app:1`,
          ],
          ["hd export", (r: string) => `${hd} export --to ${r}/app:1 --json > /dev/null`],
        ] as const
      ) {
        const fresh = await startRegistry(`${dir}/fresh-${tool.split(" ")[0]}`);
        const px = countingProxy(fresh.host);
        try {
          const ms = await timed(cmd(px.host), app);
          row("push app image to an empty registry", tool, ms, "ms", { uploaded: px.up() });
          row("push app image to an empty registry: bytes sent", tool, px.up(), "bytes");
        } finally {
          px.close();
          await fresh.stop();
        }
      }

      // ---- a one-file edit, pushed again
      const edit = (n: number) =>
        Deno.writeTextFileSync(
          `${app}/src/message.js`,
          Deno.readTextFileSync(`${app}/src/message.js`).replace(/hello[^"'`]*/, `hello ${n}`),
        );
      edit(1);
      u = proxy.up();
      const hdEdit = await timed(`${hd} export --to ${R}/hd/app:1 --json > ${dir}/p2.json`, app);
      const hdEditUp = proxy.up() - u;
      row("one-file edit → pushed", "hd export", hdEdit, "ms", { uploaded: hdEditUp });
      row("one-file edit → pushed: bytes sent", "hd export", hdEditUp, "bytes");

      const hasPodman = (await sh("command -v podman || true")).trim() !== "";
      if (!hasPodman) {
        log("export: podman not installed; no podman figures");
        return rows;
      }
      const papp = `${dir}/papp`;
      await sh(
        `cp -r ${REPO}/examples/node-app ${papp} && rm -rf ${papp}/.hd ${papp}/node_modules`,
      );
      Deno.writeTextFileSync(`${papp}/Dockerfile`, DOCKERFILE.replace("IMAGE", base));
      const tag = `localhost/hd-bench-export:${Date.now()}`;
      const build =
        `podman build -q --isolation chroot --tls-verify=false -t ${tag} ${papp} >/dev/null`;
      const push = `podman push -q --tls-verify=false ${tag} docker://${R}/pm/app:1`;
      try {
        const cold = await timed(build);
        u = proxy.up();
        const coldPush = await timed(push);
        const coldUp = proxy.up() - u;
        row("push app image to a new repo", "podman push", coldPush, "ms", {
          uploaded: coldUp,
          build: cold,
        });
        row("push app image: bytes sent", "podman push", coldUp, "bytes");
        Deno.writeTextFileSync(
          `${papp}/src/message.js`,
          Deno.readTextFileSync(`${papp}/src/message.js`).replace(/hello[^"'`]*/, "hello 1"),
        );
        u = proxy.up();
        const t0 = performance.now();
        await sh(build);
        const b = performance.now() - t0;
        await sh(push);
        const pEdit = performance.now() - t0;
        const pUp = proxy.up() - u;
        row("one-file edit → pushed", "podman build+push", pEdit, "ms", {
          uploaded: pUp,
          build: b,
        });
        row("one-file edit → pushed: bytes sent", "podman build+push", pUp, "bytes");
      } finally {
        await sh(`podman rmi -f ${tag} >/dev/null 2>&1; true`);
      }
    } finally {
      proxy.close();
      await reg.stop();
    }
    return rows;
  },
};
