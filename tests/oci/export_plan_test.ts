/**
 * The pure parts of `hd export`: destinations, the service picked, the runtime config from
 * hd.toml, SOURCE_DATE_EPOCH, and the image config's determinism.
 */
import { assertEquals, assertThrows } from "../_assert.ts";
import { imageConfig, ociLayerType, parseDest } from "../../src/oci/export.ts";
import { pickService, runtimeConfig, sourceDateEpoch } from "../../src/cli/export.ts";
import { parseSpec } from "../../src/config/parse.ts";

Deno.test("parseDest: layout, archive, registry; bad ones refused", () => {
  assertEquals(parseDest("oci:/tmp/x:1"), { kind: "oci", dir: "/tmp/x", tag: "1" });
  assertEquals(parseDest("oci:/tmp/x"), { kind: "oci", dir: "/tmp/x", tag: null });
  assertEquals(parseDest("oci:rel/dir"), { kind: "oci", dir: "rel/dir", tag: null });
  assertEquals(parseDest("docker-archive:/t/a.tar:app:1"), {
    kind: "archive",
    file: "/t/a.tar",
    ref: "app:1",
  });
  const r = parseDest("127.0.0.1:5000/team/app:dev");
  assertEquals([r.kind, (r as { repo: string }).repo, (r as { tag: string }).tag], [
    "registry",
    "team/app",
    "dev",
  ]);
  assertThrows(() => parseDest("oci:"), /no directory/);
  assertThrows(() => parseDest("oci:/x:bad tag"), /not a tag/);
  assertThrows(() => parseDest("docker-archive:"), /no file/);
  assertThrows(() => parseDest("127.0.0.1:5000/a@sha256:" + "0".repeat(64)), /digest/);
  assertThrows(() => parseDest("Not A Ref"));
});

const TOML = `[environment]
name = "e"
base = "busybox"
env = { A = "1" }

[services.web]
command = "node server.js"
port = 3000
ports = ["8080:3001"]
workdir = "web"
env = { B = "2" }

[services.worker]
command = "node worker.js"
`;

Deno.test("pickService: named, the only one, or none", () => {
  const spec = parseSpec(TOML, "/p/hd.toml");
  assertEquals(pickService(spec, "web")?.name, "web");
  assertEquals(pickService(spec, undefined), null, "two services: none by default");
  assertThrows(() => pickService(spec, "nope"), /services.nope/);
  const one = parseSpec(TOML.split("[services.worker]")[0], "/p/hd.toml");
  assertEquals(pickService(one, undefined)?.name, "web");
});

Deno.test("runtimeConfig: Env, WorkingDir, ExposedPorts, Cmd of the service", () => {
  const spec = parseSpec(TOML, "/p/hd.toml");
  const c = runtimeConfig(spec, { PATH: "/bin", A: "1" }, "/app", spec.services.web, {
    Cmd: ["sh"],
  });
  assertEquals(c.Env, ["PATH=/bin", "A=1", "B=2"]);
  assertEquals(c.WorkingDir, "/app/web");
  assertEquals(Object.keys(c.ExposedPorts!), ["3000/tcp", "3001/tcp"]);
  assertEquals([c.Entrypoint, c.Cmd], [["/bin/sh", "-c"], ["node server.js"]]);
  const none = runtimeConfig(spec, { A: "1" }, "/app", null, { Cmd: ["sh"], User: "app" });
  assertEquals([none.Cmd, none.User, none.WorkingDir], [["sh"], "app", "/app"]);
});

Deno.test("runtimeConfig: User from the service, else [environment].user, else the base's", () => {
  const withUser = TOML.replace('name = "', 'user = "node"\nname = "').replace(
    'command = "node worker.js"',
    'command = "node worker.js"\nuser = "1000:1000"\nlabels = { team = "core" }',
  );
  const spec = parseSpec(withUser, "/p/hd.toml");
  const base = { User: "root" };
  assertEquals(runtimeConfig(spec, {}, "/app", spec.services.worker, base).User, "1000:1000");
  assertEquals(runtimeConfig(spec, {}, "/app", spec.services.worker, base).Labels?.team, "core");
  assertEquals(runtimeConfig(spec, {}, "/app", spec.services.web, base).User, "node");
  const plain = parseSpec(TOML, "/p/hd.toml");
  assertEquals(runtimeConfig(plain, {}, "/app", plain.services.web, base).User, "root");
});

Deno.test("SOURCE_DATE_EPOCH: unset is 0, a number, else an error", () => {
  assertEquals(sourceDateEpoch(undefined), 0);
  assertEquals(sourceDateEpoch(""), 0);
  assertEquals(sourceDateEpoch("1700000000"), 1700000000);
  assertThrows(() => sourceDateEpoch("yesterday"), /SOURCE_DATE_EPOCH/);
  assertThrows(() => sourceDateEpoch("-1"), /SOURCE_DATE_EPOCH/);
});

Deno.test("imageConfig: the same plan gives the same bytes; created is the epoch", () => {
  const plan = {
    layers: [{ label: "x", tree: "t" }],
    config: { Env: ["A=1"], ExposedPorts: { "80/tcp": {}, "443/tcp": {} } },
    epoch: 1700000000,
    architecture: "amd64",
  };
  const a = new TextDecoder().decode(imageConfig(plan, ["sha256:aa"]));
  assertEquals(a, new TextDecoder().decode(imageConfig(plan, ["sha256:aa"])));
  const j = JSON.parse(a);
  assertEquals(j.created, "2023-11-14T22:13:20Z");
  assertEquals(Object.keys(j.config.ExposedPorts), ["443/tcp", "80/tcp"]);
  assertEquals(
    ociLayerType("application/vnd.docker.image.rootfs.diff.tar.gzip"),
    "application/vnd.oci.image.layer.v1.tar+gzip",
  );
});
