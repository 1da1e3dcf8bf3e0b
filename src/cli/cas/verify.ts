/**
 * `hd cas verify`: re-reads everything; exit 1 when anything is missing or corrupt.
 * @module
 */
import { verifyStore } from "../../cas/verify.ts";
import { dagReferences } from "../../dag/refs.ts";
import type { Command } from "../command.ts";
import { formatBytes } from "../output.ts";

/** `hd cas verify`. */
export const casVerify: Command = {
  name: "cas verify",
  summary: "re-read and re-hash every object; report missing or corrupt ones",
  usage: "hd cas verify",
  options: {},
  run(ctx) {
    const store = ctx.store(false);
    const r = verifyStore(store, dagReferences, (n) => ctx.out.progress(`verifying: ${n} checked`));
    const ok = r.corrupt.length === 0 && r.missing.length === 0;
    ctx.out.result({ ok, ...r }, () =>
      [
        ...r.corrupt.map((c) => `corrupt ${c.id} at ${c.path}: ${c.why}`),
        ...r.missing.map((m) => `missing ${m}`),
        `${
          ok ? "ok" : "damaged"
        }: checked ${r.checkedObjects} objects, ${r.checkedManifests} manifests, ${
          formatBytes(r.checkedBytes)
        }; ${r.corrupt.length} corrupt, ${r.missing.length} missing`,
      ].join("\n"));
    return ok ? 0 : 1;
  },
};
