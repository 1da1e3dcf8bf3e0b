import { assert, assertEquals } from "../_assert.ts";
import { skipUnless, tempDir, testIf } from "../_helpers.ts";
import {
  descendantPids,
  listenerOf,
  listenersOnPort,
  ownListener,
  parseProcNetTcp,
  pollInterval,
  pollPlan,
  servicePids,
  serviceTree,
  socketInode,
  waitForListener,
} from "../../src/services/readiness.ts";
import { Supervisor } from "../../src/services/supervisor.ts";
import { diagRequest, listeningSockets, parseDiagAnswer } from "../../ffi/sockdiag.ts";
import { freePort, svc, waitFor } from "./_util.ts";

const NODE = skipUnless({ commands: ["node", "setsid"] });

const TCP =
  `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 380569 1 0000000036adebc2 100 0 0 10 0
   1: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 104 1 000000003af7e559 100 0 0 10 0
   2: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 555 1 0000000036adebc2 20 4 30 10 -1
   3: 0100007F:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 0 1 0000000036adebc2 100 0 0 10 0
   4: garbage
`;
const TCP6 =
  `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:0BB8 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 778 1 0000000000000000 100 0 0 10 0
   2: 0000000000000000FFFF00000100007F:0BB9 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 779 1 0000000000000000 100 0 0 10 0
`;

Deno.test("readiness: /proc/net/tcp and tcp6 lines → LISTEN sockets (table)", () => {
  assertEquals(parseProcNetTcp(TCP), [
    { address: "127.0.0.1", port: 8080, inode: 380569 },
    { address: "0.0.0.0", port: 2024, inode: 104 },
    // the ESTABLISHED line (st 01) and the inode-0 line are not listeners; garbage is skipped
  ]);
  assertEquals(parseProcNetTcp(TCP6), [
    { address: "::", port: 8080, inode: 777 },
    { address: "::1", port: 3000, inode: 778 },
    { address: "::ffff:127.0.0.1", port: 3001, inode: 779 },
  ]);
  assertEquals(parseProcNetTcp(""), []);
});

Deno.test("readiness: fd link → socket inode (table)", () => {
  const cases: [string, number | null][] = [
    ["socket:[380569]", 380569],
    ["socket:[1]", 1],
    ["pipe:[380569]", null],
    ["/tmp/socket:[3]", null],
    ["anon_inode:[eventpoll]", null],
    ["socket:[]", null],
  ];
  for (const [link, want] of cases) assertEquals(socketInode(link), want, link);
});

Deno.test("readiness: a listener counts only when the service holds its socket (table)", () => {
  const ls = [...parseProcNetTcp(TCP), ...parseProcNetTcp(TCP6)];
  const cases: [string, number, number[], string | null][] = [
    ["the service holds the 127.0.0.1:8080 socket", 8080, [380569], "127.0.0.1"],
    ["the service holds the [::]:8080 socket", 8080, [777, 5], "::"],
    ["another process holds 8080; the service holds other sockets", 8080, [104, 555], null],
    ["the service holds nothing", 8080, [], null],
    ["the service listens, but on another port", 3000, [380569], null],
    ["an established connection's inode is no listener", 8080, [555], null],
  ];
  for (const [what, port, inodes, want] of cases) {
    assertEquals(ownListener(ls, port, new Set(inodes))?.address ?? null, want, what);
  }
});

Deno.test("readiness: the service's processes are its group and descendants (table)", () => {
  const procs = [
    { pid: 1, ppid: 0, pgid: 1 },
    { pid: 100, ppid: 1, pgid: 100 }, // the leader (setsid sh)
    { pid: 101, ppid: 100, pgid: 100 }, // a child
    { pid: 102, ppid: 101, pgid: 102 }, // a grandchild in its own group (runc's container init)
    { pid: 103, ppid: 102, pgid: 103 }, // and its child
    { pid: 104, ppid: 1, pgid: 100 }, // reparented to init, still in the group
    { pid: 200, ppid: 1, pgid: 200 }, // someone else
    { pid: 201, ppid: 200, pgid: 200 },
  ];
  assertEquals(serviceTree(procs, 100), [100, 101, 102, 103, 104]);
  assertEquals(serviceTree(procs, 200), [200, 201]);
  assertEquals(serviceTree(procs, 999), [], "a leader that is gone has no processes");
  assertEquals(serviceTree([{ pid: 5, ppid: 5, pgid: 5 }], 5), [5], "a self-parent loop ends");
});

Deno.test("readiness: polls often at first, rarely for a service that never listens (table)", () => {
  const cases: [number, number][] = [
    [0, 10],
    [299, 10],
    [300, 25],
    [1999, 25],
    [2000, 50],
    [9999, 50],
    [10_000, 250],
    [3_600_000, 250],
  ];
  for (const [t, want] of cases) assertEquals(pollInterval(t), want, `${t} ms`);
});

Deno.test("readiness: pollPlan checks in full on the old schedule, and early once the port listens", () => {
  // [elapsed, since the last full check, anything listening on the port, → full, sleep]
  const cases: [number, number, boolean | null, boolean, number][] = [
    [0, Infinity, false, true, 2], // the first poll is always full
    [4, 4, false, false, 2], // nothing listens yet: a cheap poll, 2 ms later again
    [9, 9, false, false, 2],
    [10, 10, false, true, 2], // the old 10 ms schedule still runs the full check
    [12, 2, true, true, 2], // a socket listens on the port: full check now
    [150, 1, true, true, 2], // another process holds the port: full, bounded to the quick phase
    [299, 5, false, false, 2],
    [300, 5, false, false, 25], // after the quick phase: the old intervals
    [300, 25, false, true, 25],
    [5, 5, null, true, 10], // sock_diag cannot say: the old schedule exactly
    [2500, 10, null, true, 50],
  ];
  for (const [t, since, any, full, sleepMs] of cases) {
    assertEquals(pollPlan(t, since, any), { full, sleepMs }, `${t} ms, ${since} ms, ${any}`);
  }
});

Deno.test("readiness: listenerOf sees this process's own listener, not another's", () => {
  const mine = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const port = (mine.addr as Deno.NetAddr).port;
    assertEquals(listenerOf(port, [Deno.pid])?.address, "127.0.0.1");
    assertEquals(listenerOf(port, []), null);
    assertEquals(listenerOf(port + 1 > 65535 ? 1 : port + 1, [Deno.pid]), null);
  } finally {
    mine.close();
  }
});

/** A node service that listens on `port` as soon as the port is free (retrying), logging each
 * connection it accepts. */
function patientListener(port: number): string {
  const js = `const net=require('net');let n=0;` +
    `function go(){const s=net.createServer(c=>{console.log('accepted '+(++n));c.end()});` +
    `s.on('error',()=>setTimeout(go,20));s.listen(${port},'127.0.0.1',()=>console.log('listening'))}go()`;
  return `exec node -e "${js}"`;
}

testIf(
  NODE,
  "supervisor: a port held by another process never makes a service ready; its own listener does, quietly",
  async () => {
    using tmp = tempDir();
    const port = freePort();
    // the test holds the port: the service's listen fails and retries
    const other = Deno.listen({ hostname: "127.0.0.1", port });
    const events: string[] = [];
    const lines: string[] = [];
    const sup = new Supervisor({
      services: { db: svc("db", patientListener(port), { port }) },
      dir: tmp.path,
      env: { PATH: Deno.env.get("PATH")! },
      graceMs: 1000,
      onEvent: (s, m) => events.push(`${s}: ${m}`),
      onLine: (_s, l) => lines.push(l),
    });
    try {
      sup.start();
      await waitFor(() => sup.status()[0].pid !== null, "db started");
      await new Promise((r) => setTimeout(r, 700));
      const st = sup.status()[0];
      assertEquals([st.state, st.ready], ["starting", false], events.join("\n"));
      assert(!events.some((e) => e.includes("ready")), events.join("\n"));
      assert(!lines.includes("listening"), "the service could not listen yet");
      other.close();
      await waitFor(() => sup.status()[0].ready === true, "db ready on its own listener");
      // its stdout line may come a little after the kernel shows the listener
      await waitFor(() => lines.includes("listening"), "the service says it listens");
      assert(events.includes(`db: ready on 127.0.0.1:${port}`), events.join("\n"));
      await new Promise((r) => setTimeout(r, 200));
      assert(!lines.some((l) => l.startsWith("accepted")), `readiness connected: ${lines}`);
    } finally {
      try {
        other.close();
      } catch { /* closed */ }
      await sup.close();
    }
  },
);

const NETNS = skipUnless({ commands: ["node", "setsid", "unshare", "ip"], root: true });

testIf(
  NETNS,
  "supervisor: a service in its own network namespace is ready on its listener there, whoever holds the port on the host",
  async () => {
    using tmp = tempDir();
    const port = freePort();
    const other = Deno.listen({ hostname: "127.0.0.1", port }); // the host's port: not the service's
    const events: string[] = [];
    const js =
      `require('net').createServer(c=>c.end()).listen(${port},'127.0.0.1',()=>console.log('listening'))`;
    const sup = new Supervisor({
      services: {
        ns: svc("ns", `exec unshare -n sh -c 'ip link set lo up; sleep 0.3; exec node -e "$JS"'`, {
          port,
          env: { JS: js },
        }),
      },
      dir: tmp.path,
      env: { PATH: Deno.env.get("PATH")! },
      graceMs: 1000,
      onEvent: (s, m) => events.push(`${s}: ${m}`),
    });
    try {
      sup.start();
      await waitFor(() => sup.status()[0].pid !== null, "started");
      await new Promise((r) => setTimeout(r, 150));
      assertEquals(sup.status()[0].ready, false, "not before its own listener");
      await waitFor(() => sup.status()[0].ready === true, "ready in its namespace", 10_000);
      assert(events.includes(`ns: ready on 127.0.0.1:${port}`), events.join("\n"));
    } finally {
      other.close();
      await sup.close();
    }
  },
);

Deno.test("sock_diag: the request, and answers parsed (table)", () => {
  const req = diagRequest(2, 7);
  const v = new DataView(req.buffer);
  assertEquals([v.getUint32(0, true), v.getUint16(4, true), v.getUint32(8, true)], [72, 20, 7]);
  assertEquals([req[16], req[17], v.getUint32(20, true)], [2, 6, 1 << 10]);
  // one inet_diag_msg for 127.0.0.1:8080 inode 4242, one for [::1]:3000 inode 7, then DONE
  const msg = (family: number, addr: number[], port: number, inode: number) => {
    const b = new Uint8Array(16 + 72);
    const d = new DataView(b.buffer);
    d.setUint32(0, b.length, true);
    d.setUint16(4, 20, true);
    b[16] = family;
    b[17] = 10;
    d.setUint16(20, port, false);
    b.set(addr, 24);
    d.setUint32(16 + 68, inode, true);
    return b;
  };
  const done = new Uint8Array(20);
  new DataView(done.buffer).setUint32(0, 20, true);
  new DataView(done.buffer).setUint16(4, 3, true);
  const v6 = [...new Array(15).fill(0), 1];
  const all = new Uint8Array([
    ...msg(2, [127, 0, 0, 1], 8080, 4242),
    ...msg(10, v6, 3000, 7),
    ...done,
  ]);
  assertEquals(parseDiagAnswer(all), {
    sockets: [
      { address: "127.0.0.1", port: 8080, inode: 4242 },
      { address: "::1", port: 3000, inode: 7 },
    ],
    done: true,
    error: null,
  });
  assertEquals(parseDiagAnswer(all.subarray(0, 88)).done, false, "more to come");
  assertEquals(parseDiagAnswer(all.subarray(0, 50)).sockets, [], "a cut message is not read");
  const err = new Uint8Array(36);
  new DataView(err.buffer).setUint32(0, 36, true);
  new DataView(err.buffer).setUint16(4, 2, true);
  new DataView(err.buffer).setInt32(16, -13, true);
  assertEquals(parseDiagAnswer(err).error, 13);
});

Deno.test("sock_diag: the kernel's listening sockets are /proc/net/tcp's LISTEN lines", () => {
  const a = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const b = Deno.listen({ hostname: "0.0.0.0", port: 0 });
  try {
    const fast = listeningSockets();
    if (fast === null) return void console.log("skipped: sock_diag unavailable here");
    const key = (x: { address: string; port: number; inode: number }) =>
      `${x.address} ${x.port} ${x.inode}`;
    const proc = ["tcp", "tcp6"].flatMap((t) =>
      parseProcNetTcp(Deno.readTextFileSync(`/proc/self/net/${t}`))
    );
    const mine = (x: { port: number }) =>
      x.port === (a.addr as Deno.NetAddr).port || x.port === (b.addr as Deno.NetAddr).port;
    assertEquals(fast.filter(mine).map(key).sort(), proc.filter(mine).map(key).sort());
    assertEquals(fast.filter(mine).length, 2);
  } finally {
    a.close();
    b.close();
  }
});

Deno.test("listenersOnPort: the sock_diag answer equals /proc's tables, v4 and v6", () => {
  const v4 = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (v4.addr as Deno.NetAddr).port;
  let v6: Deno.Listener | null = null;
  try {
    v6 = Deno.listen({ hostname: "::1", port });
  } catch { /* no IPv6 here: the v4 listener alone */ }
  try {
    const key = (l: { address: string; port: number; inode: number }) =>
      `${l.address} ${l.port} ${l.inode}`;
    const fromProc = ["tcp", "tcp6"].flatMap((t) =>
      parseProcNetTcp(Deno.readTextFileSync(`/proc/self/net/${t}`)).filter((l) => l.port === port)
    ).map(key).sort();
    const got = listenersOnPort(port).map(key).sort();
    assertEquals(got, fromProc);
    assertEquals(got.length, v6 ? 2 : 1);
    assertEquals(listenersOnPort(freePort()), []);
  } finally {
    v4.close();
    v6?.close();
  }
});

testIf(
  skipUnless({ commands: ["sh", "sleep"] }),
  "readiness: descendantPids (children files) finds the tree servicePids (all of /proc) finds",
  async () => {
    // a leader with two children and a grandchild (a subshell's own child)
    const c = new Deno.Command("sh", {
      args: ["-c", "sleep 30 & sleep 30 & (sleep 30 & wait) & wait"],
      stdout: "null",
      stderr: "null",
    }).spawn();
    try {
      await waitFor(() => (descendantPids(c.pid)?.length ?? 5) >= 5, "the whole tree started");
      const near = descendantPids(c.pid);
      if (near === null) {
        console.log("skipped: this kernel has no /proc/<pid>/task/<tid>/children");
        return;
      }
      assertEquals(near, servicePids(c.pid));
      assertEquals(near.length, 5);
      assertEquals(near[0], Math.min(...near));
      assertEquals(descendantPids(0x3fffffff), []); // no such process
    } finally {
      // only the group this test started: kill the leader's children through the leader's tree
      for (const pid of descendantPids(c.pid) ?? []) {
        if (pid > 1) {
          try {
            Deno.kill(pid, "SIGKILL");
          } catch { /* gone */ }
        }
      }
      await c.status;
    }
  },
);

testIf(
  NODE,
  "readiness: with the leader known, a grandchild's listener is found (descendants every poll)",
  async () => {
    using tmp = tempDir();
    const port = freePort();
    Deno.writeTextFileSync(
      `${tmp.path}/l.js`,
      `require("net").createServer(() => {}).listen(${port}, "127.0.0.1");\n`,
    );
    // sh → sh → node (each sh waits: `; :` keeps it from exec'ing): the listener is a grandchild
    Deno.writeTextFileSync(`${tmp.path}/inner.sh`, "node l.js; :\n");
    Deno.writeTextFileSync(`${tmp.path}/outer.sh`, "sh inner.sh; :\n");
    const c = new Deno.Command("sh", {
      args: ["outer.sh"],
      cwd: tmp.path,
      stdout: "null",
      stderr: "null",
    }).spawn();
    const end = performance.now() + 15_000;
    try {
      const l = await waitForListener(port, {
        pids: () => servicePids(c.pid),
        leader: c.pid,
        until: () => performance.now() > end,
      });
      assert(l !== null && l.port === port, `no listener found: ${JSON.stringify(l)}`);
    } finally {
      for (const pid of (descendantPids(c.pid) ?? []).reverse()) {
        if (pid > 1) {
          try {
            Deno.kill(pid, "SIGKILL");
          } catch { /* gone */ }
        }
      }
      await c.status;
    }
  },
);
