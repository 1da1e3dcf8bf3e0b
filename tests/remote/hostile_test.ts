/**
 * Bad remotes: a hostile proxy on 127.0.0.1 in front of a real docker-registry flips a byte of a
 * pack, truncates one (with a matching Content-Length), cuts a body short of its
 * Content-Length, answers 404 for a pack the manifest names, 401 or 403 for everything, or
 * rejects the artifact's manifest on push; and a remote nobody listens on. Each gives a one-line
 * `Cannot …` error (hd up then runs the step, see tests/e2e/remote_cache_test.ts), and the store
 * fetching from it is left without a ref to anything and with nothing corrupt in it.
 * @module
 */
import { assert, assertEquals, assertRejects } from "../_assert.ts";
import { Store } from "../../src/cas/store.ts";
import { verifyStore } from "../../src/cas/verify.ts";
import { dagReferences } from "../../src/dag/refs.ts";
import { openRemoteCache, restoreStep } from "../../src/remote/cache.ts";
import { HdError } from "../../src/sys/errors.ts";
import { S3Backend } from "../../src/remote/s3.ts";
import { freePort, startRegistry } from "../oci/_fixtures.ts";
import { hd, randomBytes, skipUnless, tempDir, testIf } from "../_helpers.ts";
import { hostileProxy, type Hostility, storeWithTree } from "./_fixtures.ts";

const STEP = "7a".repeat(32);

testIf(
  skipUnless({ commands: ["docker-registry"] }),
  "bad remotes: clear one-line errors, nothing wrong or half-written in the store",
  async (t) => {
    using tmp = tempDir();
    const reg = await startRegistry(tmp.path);
    let mode: Hostility = null;
    const proxy = hostileProxy(reg.host, () => mode);
    try {
      const ref = `${proxy.host}/team/cache`;
      const a = storeWithTree(`${tmp.path}/a`);
      await openRemoteCache(a.store, ref, { packTarget: 512 << 10 }).push(STEP, a.tree);

      const cases: [Hostility, RegExp][] = [
        ["flip", /do not match its digest/],
        ["truncate", /do not match its digest/],
        ["short", /sent \d+ of \d+ bytes|connection broke/],
        ["gone", /HTTP 404/],
        ["401", /HTTP 401/],
        ["403", /HTTP 403/],
      ];
      for (const [m, want] of cases) {
        await t.step(`${m}`, async () => {
          mode = m;
          const root = `${tmp.path}/b-${m}`;
          const b = Store.open(root, { create: true });
          const rc = openRemoteCache(b, ref);
          const e = await assertRejects(
            () => restoreStep(b, rc, STEP, (tree) => b.setRef(`builds/${STEP}`, tree)),
          );
          assert(e instanceof HdError, `${m}: ${e}`);
          assert(want.test(e.message), `${m}: ${e.message}`);
          assert(e.message.startsWith("Cannot "), e.message);
          assert(!e.message.includes("\n"), "one line");
          assertEquals(b.listRefs(), [], "no ref to a partial result");
          // pack cases: a verified pack fetched beside the bad one may be stored; refused
          // requests store nothing. Either way no ref reaches it (gc may take it).
          if (m === "401" || m === "403") assert(!b.has(a.tree));
          const v = verifyStore(b, dagReferences);
          assertEquals(v.corrupt, []);
          assertEquals(v.missing, []);
          mode = null;
        });
      }

      await t.step("a registry rejecting the artifact's manifest", async () => {
        mode = "reject-manifest";
        const e = await assertRejects(
          () => openRemoteCache(a.store, ref).push("7b".repeat(32), a.tree),
        );
        assert(/Cannot push .* HTTP 400 \(MANIFEST_INVALID/.test(e.message), e.message);
        mode = null;
      });

      await t.step(
        "a push cut short resumes: the re-run uploads only what is missing",
        async () => {
          const c = storeWithTree(`${tmp.path}/c`, { "c.bin": randomBytes(2 << 20, 99) });
          const step = "7c".repeat(32);
          mode = "reject-manifest"; // every pack arrives, then the tag is refused
          await assertRejects(() =>
            openRemoteCache(c.store, ref, { packTarget: 512 << 10 }).push(step, c.tree)
          );
          mode = null;
          const again = await openRemoteCache(c.store, ref, { packTarget: 512 << 10 }).push(
            step,
            c.tree,
          );
          assertEquals(again.uploaded, 0, "the packs were there already (HEAD)");
          assert(again.skipped >= 4, JSON.stringify(again));
          const b = Store.open(`${tmp.path}/b-resumed`, { create: true });
          assert(await restoreStep(b, openRemoteCache(b, ref), step, () => {}));
        },
      );

      await t.step("unreachable", async () => {
        const b = Store.open(`${tmp.path}/b-unreachable`, { create: true });
        const rc = openRemoteCache(b, `127.0.0.1:${freePort()}/team/cache`);
        const e = await assertRejects(() => rc.lookup(STEP));
        assert(/^Cannot fetch .*refused/i.test(e.message), e.message);
      });

      await t.step("the CLI: one line, exit 1", async () => {
        mode = "403";
        const dir = `${tmp.path}/proj`;
        Deno.mkdirSync(dir);
        Deno.writeTextFileSync(`${dir}/hd.toml`, `[environment]\nname = "x"\n`);
        const r = await hd(["cache", "ls", "--cache", ref], { cwd: dir, store: `${tmp.path}/s` });
        assertEquals(r.code, 1);
        assert(/Cannot .*HTTP 403/.test(r.stderr), r.stderr);
        mode = null;
      });
    } finally {
      await proxy.close();
      await reg.stop();
    }
  },
);

Deno.test("S3: blobs go with If-None-Match: * and SigV4; a 412 means already written", async () => {
  // s3rver 3.7.1 ignores If-None-Match (it overwrites), so the 412 path is checked here
  const seen: Headers[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    seen.push(req.headers);
    return new Response(
      "<Error><Code>PreconditionFailed</Code></Error>",
      { status: req.method === "PUT" ? 412 : 500 },
    );
  });
  try {
    const env: Record<string, string> = {
      AWS_ENDPOINT_URL: `http://127.0.0.1:${(server.addr as Deno.NetAddr).port}`,
      AWS_ACCESS_KEY_ID: "AK",
      AWS_SECRET_ACCESS_KEY: "SK",
    };
    const b = new S3Backend("s3://bucket/p", (k) => env[k]);
    assertEquals(await b.putBlob(`sha256:${"0".repeat(64)}`, new Uint8Array([1])), "uploaded");
    assertEquals(seen[0].get("if-none-match"), "*");
    assert(seen[0].get("authorization")?.startsWith("AWS4-HMAC-SHA256 Credential=AK/"));
    const e = await assertRejects(() => b.listSteps());
    assert(/^Cannot list steps in s3:\/\/bucket\/p: HTTP 500/.test(e.message), e.message);
  } finally {
    await server.shutdown();
  }
});
