/**
 * `labels` and `expose` through the real CLI on the host: `hd up -d --wait` keeps them,
 * `hd ps --json` and `hd status --json` show them, `hd ps` shows an EXPOSE column; readiness
 * stays `port` (an exposed port nobody listens on does not hold the service back).
 */
import { assert, assertEquals } from "../_assert.ts";
import { downAtEnd, hd, skipUnless, tempDir, testIf } from "../_helpers.ts";

const NEEDS = skipUnless({ commands: ["setsid"] });

interface Svc {
  name: string;
  state: string;
  labels?: Record<string, string>;
  expose?: number[];
}

testIf(NEEDS, "labels and expose: kept, shown by hd ps and hd status", async () => {
  using tmp = tempDir();
  using store = tempDir();
  Deno.writeTextFileSync(
    `${tmp.path}/hd.toml`,
    `[environment]
name = "labeltest"

[services.app]
command = "exec sleep 300"
labels = { "com.example.team" = "web", tier = "front" }
expose = [9229, 3001]

[services.plain]
command = "exec sleep 301"

[options]
restart_grace = "1s"
`,
  );
  const opts = { cwd: tmp.path, store: store.path };
  await using _down = downAtEnd(opts);
  const up = await hd(["up", "-d", "--wait"], opts);
  assertEquals(up.code, 0, up.stderr + up.stdout);
  const ps = await hd(["ps", "--json"], opts);
  assertEquals(ps.code, 0, ps.stderr);
  const svcs = JSON.parse(ps.stdout).services as Svc[];
  const app = svcs.find((s) => s.name === "app")!;
  const plain = svcs.find((s) => s.name === "plain")!;
  assertEquals(app.state, "running", "an exposed port is not a readiness port");
  assertEquals(app.labels, { "com.example.team": "web", tier: "front" });
  assertEquals(app.expose, [9229, 3001]);
  assertEquals([plain.labels, plain.expose], [undefined, undefined]);
  const st = await hd(["status", "--json"], opts);
  assertEquals(st.code, 0, st.stderr);
  const app2 = (JSON.parse(st.stdout).up.services as Svc[]).find((s) => s.name === "app")!;
  assertEquals(app2.labels?.tier, "front");
  const text = await hd(["ps"], opts);
  assert(/EXPOSE/.test(text.stdout) && /9229, 3001/.test(text.stdout), text.stdout);
});
