/**
 * A spare supervisor keeps a standing check of the project's proof while it waits
 * (src/services/prespawn.ts's standBy: a watch of the tracked files started before the check):
 * the next `hd up -d` starts its first service from that check without stat'ing every path again,
 * a file edited while the spare waits is checked again and is in the tree the session records,
 * and a file edited just before `hd up -d` (the watch moved since the check) means a fresh check,
 * never the stale one. Read from HD_TRACE's timeline and the status, end to end on the host.
 * @module
 */
import { assert, assertEquals } from "../_assert.ts";
import { downAtEnd, hd, skipUnless, tempDir, testIf } from "../_helpers.ts";
import { waitFor, waitForProof } from "./_util.ts";
import { spareSocketPath } from "../../src/services/spare.ts";
import { jsonlRequest } from "../../src/sys/jsonl.ts";

const NEEDS = skipUnless({ commands: ["setsid", "sh"] });

/** The trace's lines from `from` on. */
function traced(file: string, from: number): string[] {
  return Deno.readTextFileSync(file).slice(from).split("\n");
}

/** The lines of `.hd/logs/a.log` that say how the service started. */
function starts(dir: string): string[] {
  try {
    return Deno.readTextFileSync(`${dir}/.hd/logs/a.log`).split("\n")
      .filter((l) => l.includes("] started (pid"));
  } catch {
    return [];
  }
}

testIf(
  NEEDS,
  "a spare's standing check: taken by the next hd up -d, checked again after an edit, not taken when stale",
  async () => {
    using tmp = tempDir();
    using store = tempDir();
    using tr = tempDir();
    const dir = tmp.path;
    const trace = `${tr.path}/trace.txt`;
    Deno.writeTextFileSync(trace, "");
    const opts = {
      cwd: dir,
      store: store.path,
      env: { HD_SPARE_LINGER: "60", HD_TRACE: trace },
    };
    Deno.writeTextFileSync(
      `${dir}/hd.toml`,
      `[environment]\nname = "stand"\n\n[services.a]\ncommand = "exec sleep 600"\n`,
    );
    Deno.mkdirSync(`${dir}/src`);
    Deno.writeTextFileSync(`${dir}/src/x.txt`, "one\n");
    await using _down = downAtEnd(opts);
    // the racy rule: hd.toml older by a second than the process that parses it (the spare)
    await new Promise((r) => setTimeout(r, 1200));
    // the first up makes .hd/ (no proof from that one); past the racy window, the next saves one
    assertEquals((await hd(["up", "-d"], opts)).code, 0);
    assertEquals((await hd(["down"], opts)).code, 0);
    await new Promise((r) => setTimeout(r, 1200));
    assertEquals((await hd(["up", "-d"], opts)).code, 0);
    await waitForProof(dir);
    assertEquals((await hd(["down"], opts)).code, 0);
    /**
     * Waits for the spare's next standing check after `from`, and for the spare to listen (it
     * checks before it opens its socket: an up sooner would start a supervisor of its own); the
     * check's line.
     */
    const standing = async (from: number) => {
      let line = "";
      await waitFor(() => {
        line = traced(trace, from).find((l) => l.includes("a standing check")) ?? "";
        return line !== "";
      }, "the spare's standing check");
      await waitFor(async () => {
        const r = await jsonlRequest(spareSocketPath(dir), { op: "ping" }, {
          replyTimeoutMs: 2000,
        }).catch(() => null) as { pid?: number } | null;
        return (r?.pid ?? 0) > 1;
      }, "the spare listening");
      return line;
    };
    const upRoot = async () => {
      const r = await hd(["up", "-d", "--json"], opts);
      assertEquals(r.code, 0, r.stderr);
      return r;
    };
    const statusRoot = async () => JSON.parse((await hd(["status", "--json"], opts)).stdout);

    // 1. nothing changed: the up takes the standing check, a starts early and is kept
    let mark = Deno.readTextFileSync(trace).length;
    assert((await standing(mark)).includes("0 file(s) changed"));
    mark = Deno.readTextFileSync(trace).length;
    await upRoot();
    let t = traced(trace, mark);
    assert(t.some((l) => l.includes("the spare's standing check")), t.join("\n"));
    assert(starts(dir).at(-1)!.includes("started before the session loaded"), starts(dir).at(-1));
    assertEquals((await hd(["down"], opts)).code, 0);

    // 2. an edit while the spare waits: checked again, taken, and in the recorded tree
    mark = Deno.readTextFileSync(trace).length;
    await standing(mark); // the new spare's first check
    mark = Deno.readTextFileSync(trace).length;
    Deno.writeTextFileSync(`${dir}/src/x.txt`, "two\n", { append: true });
    assert((await standing(mark)).includes("1 file(s) changed"));
    // (the racy rule: the session saves its proof only of files written a second before it)
    await new Promise((r) => setTimeout(r, 1200));
    mark = Deno.readTextFileSync(trace).length;
    await upRoot();
    t = traced(trace, mark);
    assert(t.some((l) => l.includes("the spare's standing check")), t.join("\n"));
    assert(starts(dir).at(-1)!.includes("started before the session loaded"), starts(dir).at(-1));
    const s2 = await statusRoot();
    assertEquals(s2.up.root, s2.env.id, "the session's root is the files' as they are");
    assertEquals((await hd(["down"], opts)).code, 0);

    // 3. an edit just before the up (inside the watch's debounce): the standing check is stale,
    // a fresh one is made, and the edit is in what the session records
    mark = Deno.readTextFileSync(trace).length;
    await standing(mark);
    mark = Deno.readTextFileSync(trace).length;
    Deno.writeTextFileSync(`${dir}/src/x.txt`, "three\n", { append: true });
    await upRoot();
    t = traced(trace, mark);
    const taken = t.some((l) => l.includes("the spare's standing check"));
    const rechecked = t.filter((l) => l.includes("a standing check")).length > 0;
    // (the spare's own watch may have checked again before the up asked: then taking it is right)
    assert(!taken || rechecked, t.join("\n"));
    const s3 = await statusRoot();
    assertEquals(s3.up.root, s3.env.id, "the edit is in the session's tree");
    assertEquals((await hd(["down"], opts)).code, 0);
  },
);
