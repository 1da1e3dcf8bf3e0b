/** Image references are read as docker reads them. */
import { assertEquals, assertThrows } from "../_assert.ts";
import { isLoopbackHost, parseReference } from "../../src/oci/reference.ts";

Deno.test("references normalize like docker's", () => {
  const cases: [string, string, string, string][] = [
    ["node:20", "docker.io/library/node:20", "registry-1.docker.io", "library/node"],
    ["library/node", "docker.io/library/node:latest", "registry-1.docker.io", "library/node"],
    ["node", "docker.io/library/node:latest", "registry-1.docker.io", "library/node"],
    ["user/app:1.2", "docker.io/user/app:1.2", "registry-1.docker.io", "user/app"],
    ["ghcr.io/o/r:tag", "ghcr.io/o/r:tag", "ghcr.io", "o/r"],
    ["localhost:5000/x", "localhost:5000/x:latest", "localhost:5000", "x"],
    ["localhost/x", "localhost/x:latest", "localhost", "x"],
    ["docker.io/node", "docker.io/library/node:latest", "registry-1.docker.io", "library/node"],
    ["index.docker.io/a/b", "docker.io/a/b:latest", "registry-1.docker.io", "a/b"],
    ["docker://quay.io/a/b/c:v", "quay.io/a/b/c:v", "quay.io", "a/b/c"],
  ];
  for (const [ref, norm, host, repo] of cases) {
    const r = parseReference(ref);
    assertEquals([r.normalized, r.apiHost, r.repository], [norm, host, repo], ref);
  }
  const d = "sha256:" + "ab".repeat(32);
  const r = parseReference(`localhost:5000/x@${d}`);
  assertEquals([r.tag, r.digest, r.normalized], [null, d, `localhost:5000/x@${d}`]);
  const both = parseReference(`node:20@${d}`);
  assertEquals([both.tag, both.digest], ["20", d]);
});

Deno.test("bad references are usage errors", () => {
  for (const bad of ["", "Node", "node:", "a/b@sha256:12", "node:-x", "a//b", "x@md5"]) {
    const e = assertThrows(() => parseReference(bad), /Cannot parse image reference/);
    assertEquals((e as unknown as { exitCode: number }).exitCode, 2);
  }
});

Deno.test("loopback hosts", () => {
  for (const h of ["localhost", "localhost:5000", "127.0.0.1:9", "127.1.2.3", "[::1]:5000"]) {
    assertEquals(isLoopbackHost(h), true, h);
  }
  for (const h of ["ghcr.io", "10.0.0.1:5000", "localhost.example.com"]) {
    assertEquals(isLoopbackHost(h), false, h);
  }
});
