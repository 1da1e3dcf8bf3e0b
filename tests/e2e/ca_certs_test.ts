/**
 * `ca_certs = true` in [environment] gives the sandbox the host's CA certificates (what
 * `HD_HOST_CA=1` did, which still works); a step failing on an untrusted certificate chain gets a
 * hint at it.
 */
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { hd, skipUnless, tempDir, testIf } from "../_helpers.ts";
import { busyboxRegistry } from "../sandbox/_image.ts";
import { parseSpec } from "../../src/config/parse.ts";
import { tlsInterception } from "../../src/runtime/ca_certs.ts";
import { HOST_CA_BUNDLE } from "../../src/sandbox/container.ts";

const skip = skipUnless({
  commands: ["runc", "unshare", "setpriv", "docker-registry", "skopeo", "setsid"],
  paths: ["/bin/busybox", "/usr/bin/tini-static", HOST_CA_BUNDLE],
});

Deno.test("ca_certs: the key parses; a non-boolean is refused", () => {
  const t = (v: string) => parseSpec(`[environment]\nname = "c"\nca_certs = ${v}\n`, "/p/hd.toml");
  assertEquals(t("true").environment.caCerts, true);
  assertEquals(t("false").environment.caCerts, false);
  assertEquals(
    parseSpec(`[environment]\nname = "c"\n`, "/p/hd.toml").environment.caCerts,
    undefined,
  );
  try {
    t(`"yes"`);
    throw new Error("accepted");
  } catch (e) {
    assertIncludes((e as Error).message, "ca_certs must be true or false, not a string");
    assertIncludes((e as Error).message, "hd.toml:3");
  }
});

Deno.test("ca_certs: which output lines mean an untrusted chain (table)", () => {
  const cases: [string, boolean][] = [
    ["npm ERR! code SELF_SIGNED_CERT_IN_CHAIN", true],
    ["curl: (60) SSL certificate problem: self-signed certificate in certificate chain", true],
    ["SSL certificate problem: self signed certificate in certificate chain", true],
    ["pip: unable to get local issuer certificate (_ssl.c:1006)", true],
    ["Error: UNABLE_TO_GET_ISSUER_CERT_LOCALLY", true],
    ["npm ERR! code E404", false],
    ["added 12 packages", false],
  ];
  for (const [line, want] of cases) assertEquals(tlsInterception(line), want, line);
});

testIf(
  skip,
  "ca_certs = true: the host's CA bundle in the sandbox; the hint on a failed step",
  async () => {
    using tmp = tempDir();
    const { reg, ref } = await busyboxRegistry(tmp.path);
    const store = `${tmp.path}/store`;
    const dir = `${tmp.path}/proj`;
    Deno.mkdirSync(dir);
    const write = (ca: boolean, steps = "") =>
      Deno.writeTextFileSync(
        `${dir}/hd.toml`,
        `[environment]\nname = "ca"\nbase = "${ref}"\n${ca ? "ca_certs = true\n" : ""}${steps}`,
      );
    const probe = [
      "exec",
      "sh",
      "-c",
      'echo "[$SSL_CERT_FILE]"; test -s /etc/ssl/certs/ca-certificates.crt && echo bundle',
    ];
    try {
      write(true);
      const on = await hd(probe, { store, cwd: dir, env: { HD_HOST_CA: "" } });
      assertEquals(on.stdout, `[${HOST_CA_BUNDLE}]\nbundle\n`, on.stderr);
      write(false);
      const off = await hd(probe, { store, cwd: dir, env: { HD_HOST_CA: "" } });
      assertEquals(off.stdout, "[]\n", off.stderr);
      const env = await hd(probe, { store, cwd: dir, env: { HD_HOST_CA: "1" } });
      assertEquals(env.stdout, `[${HOST_CA_BUNDLE}]\nbundle\n`, "HD_HOST_CA=1 still works");

      write(
        false,
        `\n[build]\nsteps = ["echo 'npm ERR! code SELF_SIGNED_CERT_IN_CHAIN'; exit 1"]\n`,
      );
      const failed = await hd(["exec", "true"], { store, cwd: dir, env: { HD_HOST_CA: "" } });
      assertEquals(failed.code, 1, failed.stderr);
      assertIncludes(failed.stderr, "add `ca_certs = true` to [environment]");
      write(
        true,
        `\n[build]\nsteps = ["echo 'npm ERR! code SELF_SIGNED_CERT_IN_CHAIN'; exit 1"]\n`,
      );
      const already = await hd(["exec", "true"], { store, cwd: dir, env: { HD_HOST_CA: "" } });
      assert(!already.stderr.includes("add `ca_certs = true`"), "no hint when it is on");
    } finally {
      await reg.stop().catch(() => {});
    }
  },
);
