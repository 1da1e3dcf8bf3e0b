/**
 * STOPSIGNAL / compose's stop_signal and stop_grace_period come over as `stop_signal` and
 * `restart_grace`, LABEL / labels and EXPOSE / expose as `labels` and `expose`, when hd can
 * honour them; what it cannot is reported (never written).
 */
import { assert, assertEquals } from "../_assert.ts";
import { translateDockerfile } from "../../src/ingest/from_dockerfile.ts";
import { translateCompose } from "../../src/ingest/compose.ts";
import { currentFeatures, Translation } from "../../src/ingest/model.ts";

Deno.test("ingest: STOPSIGNAL INT becomes stop_signal = SIGINT; SIGSTOP is reported", () => {
  const ok = new Translation(currentFeatures());
  const r = translateDockerfile(ok, {
    file: "Dockerfile",
    text: 'FROM a\nSTOPSIGNAL INT\nCMD ["x"]\n',
  });
  assertEquals(r.service?.extra.stop_signal, "SIGINT");
  assertEquals(ok.reports, []);
  const bad = new Translation(currentFeatures());
  const r2 = translateDockerfile(bad, {
    file: "Dockerfile",
    text: 'FROM a\nSTOPSIGNAL SIGSTOP\nCMD ["x"]\n',
  });
  assertEquals(r2.service?.extra.stop_signal, undefined);
  assertEquals(bad.reports.map((x) => [x.line, x.what]), [[2, "STOPSIGNAL SIGSTOP"]]);
  assert(/hd stops a service with SIGTERM/.test(bad.reports[0].why));
});

Deno.test("ingest: compose stop_signal / stop_grace_period; bad ones are reported", () => {
  const tr = new Translation(currentFeatures());
  const doc = translateCompose(tr, {
    file: "compose.yaml",
    name: "app",
    text:
      "services:\n  a:\n    image: x\n    stop_signal: SIGQUIT\n    stop_grace_period: 1m30s\n" +
      "  b:\n    image: x\n    stop_signal: SIGSTOP\n    stop_grace_period: 3h\n",
  });
  const [a, b] = doc.services;
  assertEquals([a.extra.stop_signal, a.extra.restart_grace], ["SIGQUIT", "1m30s"]);
  assertEquals([b.extra.stop_signal, b.extra.restart_grace], [undefined, undefined]);
  assertEquals(tr.reports.map((x) => x.line), [8, 9]);
});

Deno.test("ingest: compose labels and expose; a port range in expose is reported", () => {
  const tr = new Translation(currentFeatures());
  const doc = translateCompose(tr, {
    file: "compose.yaml",
    name: "app",
    text: "services:\n  a:\n    image: x\n    labels:\n      - tier=front\n" +
      '    expose: ["3000", "9229/tcp", "4000-4002", "53/udp"]\n',
  });
  const [a] = doc.services;
  assertEquals(a.extra.labels, { tier: "front" });
  assertEquals([a.port, a.extra.expose], [3000, [9229]]);
  assertEquals(tr.reports.map((x) => [x.line, x.what]), [[6, "expose 4000-4002"], [
    6,
    "expose 53/udp",
  ]]);
});
