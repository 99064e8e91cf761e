/**
 * Conformance: replay what a genuine Proxmox VE 8.4.21 answered (the recorded transcript in
 * ../shared/pve-api/transcripts) against the sandbox in 8.4 mode, set up like the recording
 * host (node `vm`, storages `local` dir and `tank` btrfs, the recorded busybox template in
 * `local`), and compare every exchange: status, reason phrase, body (message, errors, shape,
 * every value after the shared normalisation), and for task-starting calls the task's
 * exitstatus and log tail. All differences are collected and printed together.
 */
import { expect } from "chai";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import * as zlib from "node:zlib";
import * as tarStream from "tar-stream";
import { startSandbox, type SandboxHandle } from "../../sandbox";
import { request, type Resp } from "./helpers";
import {
  TRANSCRIPT_DIR, artifactRules, blank, compare, loadTranscript, normalise, normaliseString, substitute, type Exchange,
} from "../support/conformance";

const NODE = "vm";
const TEMPLATE = "busybox-test_1.0_amd64.tar.gz";
/** Where the list of current differences is written for whoever fixes them (git-ignored). */
const DIFF_FILE = path.resolve(__dirname, "../../.conformance-diffs.txt");

/** Which identity made each request in the recording (by step-name prefix); default: the root token. */
function identityOf(step: string): "root" | "probe" | "rootProbe" | "wrong" {
  if (/^(no ACL|VMAdmin token|deleted user's token)/.test(step)) return "probe";
  if (/^root privsep token/.test(step)) return "rootProbe";
  if (/^wrong token/.test(step)) return "wrong";
  return "root";
}

/** Steps whose path names a `<upid>`: the step that started that task (or none: an unknown UPID). */
const UPID_OF_STEP: Record<string, string | null> = {
  "task log start=1 limit=2": "create 900",
  "task status (create 900)": "create 900",
  "task status of unknown UPID": null,
};

/** Values the recording hid that a request must carry: a too-short password, a stale digest. */
const PARAM_VALUES: Record<string, string> = { password: "abc", digest: "0".repeat(40) };

/** A gzipped tar of exactly `bytes` bytes (the recording's upload had 235), deterministic. */
async function tarGzOfSize(bytes: number): Promise<Buffer> {
  for (let pad = 0; pad < 4 * bytes; pad++) {
    const pack = tarStream.pack();
    const chunks: Buffer[] = [];
    pack.on("data", (c: unknown) => chunks.push(c as Buffer));
    const ended = new Promise<void>((resolve) => pack.on("end", () => resolve()));
    let fill = Buffer.alloc(0);
    for (let i = 0; fill.length < pad; i++) fill = Buffer.concat([fill, crypto.createHash("sha256").update(`${pad}/${i}`).digest()]);
    pack.entry({ name: "./etc/os-release", mode: 0o644, mtime: new Date(0) }, Buffer.concat([Buffer.from("ID=probe\n"), fill.subarray(0, pad)]));
    pack.finalize();
    await ended;
    const gz = zlib.gzipSync(Buffer.concat(chunks), { level: 9 });
    if (gz.length === bytes) return gz;
  }
  throw new Error(`no tar.gz of exactly ${bytes} bytes`);
}

function multipart(fields: Record<string, string | number>, fileField: string, filename: string, data: Buffer): { body: Buffer; type: string } {
  const boundary = `----conformance${crypto.randomBytes(8).toString("hex")}`;
  const parts: Buffer[] = [];
  for (const [k, v] of Object.entries(fields)) parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`));
  parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${fileField}"; filename="${filename}"\r\nContent-Type: application/octet-stream\r\n\r\n`));
  parts.push(data, Buffer.from(`\r\n--${boundary}--\r\n`));
  return { body: Buffer.concat(parts), type: `multipart/form-data; boundary=${boundary}` };
}

interface Replay {
  sb: SandboxHandle;
  tokens: Record<string, string>;
  upids: Map<string, string>;
  subs: Map<string, string>;
  uploads: Map<string, { data: Buffer; filename: string }>;
}

function send(r: Replay, ex: Exchange, token: string, urlPath: string, params: Record<string, string | number>): Promise<Resp> {
  const auth = { token };
  const file = ex.files ? Object.entries(ex.files)[0] : undefined;
  if (file) {
    const up = r.uploads.get(file[1].filename)!;
    const mp = multipart(params, file[0], up.filename, up.data);
    return request(r.sb, ex.method, urlPath, { auth, body: mp.body, headers: { "Content-Type": mp.type } });
  }
  if (ex.method === "GET" || ex.method === "DELETE") {
    const qs = new URLSearchParams(Object.entries(params).map(([k, v]): [string, string] => [k, String(v)])).toString();
    return request(r.sb, ex.method, qs ? `${urlPath}?${qs}` : urlPath, { auth });
  }
  return request(r.sb, ex.method, urlPath, { auth, form: params });
}

async function taskOf(r: Replay, upid: string): Promise<{ status: any; log: string[] }> {
  const root = r.tokens.root;
  const enc = encodeURIComponent(upid);
  const deadline = Date.now() + 20000;
  for (;;) {
    const st = await request(r.sb, "GET", `/nodes/${NODE}/tasks/${enc}/status`, { auth: { token: root } });
    if (st.status === 200 && st.json.data.status === "stopped") {
      const log = await request(r.sb, "GET", `/nodes/${NODE}/tasks/${enc}/log?limit=0`, { auth: { token: root } });
      return { status: st.json.data, log: (log.json?.data ?? []).map((l: { t: string }) => l.t) };
    }
    if (Date.now() > deadline) throw new Error(`task ${upid} did not finish`);
    await new Promise((res) => setTimeout(res, 5));
  }
}

/** Tasks a task launches (rollback start=1 → vzstart) finish before the next step, as when recorded. */
async function waitIdle(r: Replay): Promise<void> {
  const deadline = Date.now() + 20000;
  while (Date.now() < deadline) {
    const a = await request(r.sb, "GET", `/nodes/${NODE}/tasks?source=active`, { auth: { token: r.tokens.root } });
    if (a.status !== 200 || !(a.json?.data ?? []).length) return;
    await new Promise((res) => setTimeout(res, 5));
  }
}

function urlOf(r: Replay, ex: Exchange): string {
  let p = ex.path;
  if (p.includes("<upid>")) {
    const from = UPID_OF_STEP[ex.step];
    const upid = from ? r.upids.get(from) : `UPID:${NODE}:0000DEAD:0000BEEF:6A000000:vzcreate:999:root@pam:`;
    if (!upid) throw new Error(`step '${ex.step}': no UPID recorded for '${from}'`);
    p = p.replace("<upid>", encodeURIComponent(upid));
  }
  // A volume ID with a `/` is one path segment.
  return p.replace(/(\/content\/)(.+)$/, (_m, a: string, v: string) => a + encodeURIComponent(v));
}

async function replayOne(r: Replay, ex: Exchange, diffs: string[]): Promise<void> {
  const where = `#${ex.step}`;
  const params: Record<string, string | number> = {};
  for (const [k, v] of Object.entries(substitute(ex.params ?? {}, r.subs))) params[k] = typeof v === "string" && /^<\w+>$/.test(v) && k in PARAM_VALUES ? PARAM_VALUES[k] : v;
  const res = await send(r, ex, r.tokens[identityOf(ex.step)], urlOf(r, ex), params);
  const out: string[] = [];
  const rules = artifactRules(ex.host_artifact);
  if (res.status !== ex.status) out.push(`status: expected ${ex.status}, got ${res.status}`);
  if (res.reason !== ex.reason) out.push(`reason: expected ${JSON.stringify(ex.reason)}, got ${JSON.stringify(res.reason)}`);
  const sortLists = ex.method === "GET" && !/\/tasks($|\/)/.test(ex.path);
  const expected = blank(normalise(substitute(ex.body, r.subs), sortLists), rules.ignoreKeys);
  const actualBody = res.json ?? { _raw: res.text };
  compare(expected, blank(normalise(actualBody, sortLists), rules.ignoreKeys), "body", out);
  if (ex.task) {
    const upid = typeof res.json?.data === "string" && res.json.data.startsWith("UPID:") ? res.json.data : undefined;
    if (!upid) out.push("task: no UPID in the answer");
    else {
      r.upids.set(ex.step, upid);
      const t = await taskOf(r, upid);
      await waitIdle(r);
      const exp = substitute(ex.task, r.subs);
      compare(exp.task_status, t.status.status, "task.status", out);
      compare(exp.exitstatus, normaliseString(String(t.status.exitstatus)), "task.exitstatus", out);
      if (!rules.skipLogTail) {
        const tail = t.log.slice(-exp.log_tail.length).map(normaliseString);
        if (JSON.stringify(tail) !== JSON.stringify(exp.log_tail)) out.push(`task.log_tail: expected ${JSON.stringify(exp.log_tail)}, got ${JSON.stringify(tail)} (whole log ${JSON.stringify(t.log.map(normaliseString))})`);
      }
    }
  }
  // The secret of a token created by this step is what later steps authenticate with.
  const created = /^\/access\/users\/([^/]+)\/token\/([^/]+)$/.exec(ex.path);
  if (ex.method === "POST" && created && res.status === 200 && res.json?.data?.value) {
    const full = `${created[1]}!${created[2]}`;
    const key = full === "root@pam!probe" ? "rootProbe" : full === "probe@pve!probe" ? "probe" : full;
    r.tokens[key] = `${full}=${res.json.data.value}`;
  }
  for (const line of out) diffs.push(`${where} (${ex.method} ${ex.path}): ${line}`);
}

describe("sandbox conformance with a recorded Proxmox VE 8.4 (transcript replay)", function () {
  this.timeout(180000);
  const transcript = loadTranscript("pve-8.4-probe.json");
  let r: Replay;

  before(async () => {
    const sb = await startSandbox({
      port: 0, authFailureDelayMs: 0, taskDurationMs: 5, pveVersion: "8.4", nodes: [NODE],
      storages: [{ storage: "local", type: "dir" }, { storage: "tank", type: "btrfs" }],
    });
    r = { sb, tokens: {}, upids: new Map(), subs: new Map(), uploads: new Map() };
    // POST …/template forks a worker that holds the config lock while it converts; the
    // recording read the config before it was done (and the next PUT waited for the lock).
    // A conversion that takes 1.5 s reproduces that order however loaded the machine is.
    await sb.admin.setTaskDuration({ vztemplate: 1500 });
    // The recording's client: a root@pam token without privilege separation named `e2e`.
    const tok = await request(sb, "POST", "/access/users/root@pam/token/e2e", { auth: { token: sb.apiToken }, form: { privsep: 0 } });
    expect(tok.status, tok.text).to.equal(200);
    r.tokens.root = `root@pam!e2e=${tok.json.data.value}`;
    r.tokens.wrong = "root@pam!e2e=00000000-0000-0000-0000-000000000000";
    // The recorded template, uploaded to `local` like on the recording host.
    const tmpl = fs.readFileSync(path.join(TRANSCRIPT_DIR, TEMPLATE));
    const mp = multipart({ content: "vztmpl" }, "filename", TEMPLATE, tmpl);
    const up = await request(sb, "POST", `/nodes/${NODE}/storage/local/upload`, { auth: { token: sb.apiToken }, body: mp.body, headers: { "Content-Type": mp.type } });
    expect(up.status, up.text).to.equal(200);
    expect((await taskOf(r, up.json.data)).status.exitstatus).to.equal("OK");
    // Files the recording uploaded: same name and size; their checksum replaces the recorded one.
    for (const ex of transcript) {
      for (const f of Object.values(ex.files ?? {})) {
        const data = await tarGzOfSize(f.bytes);
        r.uploads.set(f.filename, { data, filename: f.filename });
        r.subs.set(f.sha256, crypto.createHash("sha256").update(data).digest("hex"));
      }
    }
  });

  after(async () => r?.sb.stop());

  it(`answers all ${transcript.length} recorded exchanges as PVE 8.4.21 did`, async () => {
    const diffs: string[] = [];
    const failed = new Set<string>();
    for (const ex of transcript) {
      const before = diffs.length;
      try {
        await replayOne(r, ex, diffs);
      } catch (e) {
        diffs.push(`#${ex.step} (${ex.method} ${ex.path}): replay error ${(e as Error).message}`);
      }
      if (diffs.length > before) failed.add(ex.step);
    }
    const summary = `${transcript.length - failed.size} of ${transcript.length} exchanges match; ${failed.size} differ (${diffs.length} differences)`;
    fs.writeFileSync(DIFF_FILE, `${summary}\n\n${diffs.join("\n")}\n`);
    if (diffs.length) expect.fail(`${summary}:\n${diffs.join("\n")}`);
  });
});

describe("conformance normaliser (test/support/conformance.ts)", () => {
  it("maps volatile values to the recording's placeholders and sorts hash-ordered lists", () => {
    const live = {
      upid: "UPID:vm:00001234:0000ABCD:6745A1B2:vzcreate:900:root@pam!e2e:",
      net0: "name=eth0,hwaddr=BC:24:11:AA:BB:CC,type=veth",
      fp: "AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99",
      digest: "7a753352cc138c93b08abb79dfc772acfb448c32",
      log: ["Filesystem UUID: 0b5c3b4e-8f0e-4c43-9f55-1a2b3c4d5e6f", "mount /dev/loop3 /tmp", "Total bytes read: 2140160 (2.1MiB, 41MiB/s)"],
      list: [{ key: "b" }, { key: "a" }],
    };
    expect(normalise(live, true)).to.deep.equal({
      upid: "<upid>", net0: "name=eth0,hwaddr=<mac>,type=veth", fp: live.fp, digest: "<digest>",
      log: ["Filesystem UUID: <uuid>", "mount /dev/loop<N> /tmp", "Total bytes read: 2140160 (2.1MiB, <rate>)"].sort(),
      list: [{ key: "a" }, { key: "b" }],
    });
    expect((normalise(live, false) as any).list).to.deep.equal([{ key: "b" }, { key: "a" }]);
  });

  it("reports every difference: values, missing and extra keys, list lengths; class placeholders match only their class", () => {
    const out: string[] = [];
    compare({ a: 1, b: "<n>", c: "<n>", d: [1, 2], e: "x" }, { a: 2, b: 17, c: "many", d: [1], f: true }, "body", out);
    expect(out).to.deep.equal([
      "body.a: expected 1, got 2",
      'body.c: expected <n>, got "many"',
      "body.d: expected 2 items [1,2], got 1 [1]",
      'body.e: expected "x", missing',
      "body.f: unexpected key, value true",
    ]);
  });

  it("honours host_artifact notes: no log tail, or the shape only of ip-addresses", () => {
    expect(artifactRules("the task's log tail has permission noise from the recording host")).to.deep.equal({ skipLogTail: true, ignoreKeys: [] });
    const rules = artifactRules("the recording host's busybox template brings up no addresses inside the CT: compare the shape only, not ip-addresses");
    expect(rules).to.deep.equal({ skipLogTail: false, ignoreKeys: ["ip-addresses"] });
    expect(blank([{ name: "eth0", inet: "10.0.0.1/24", "ip-addresses": [{ x: 1 }] }], rules.ignoreKeys)).to.deep.equal([{ name: "eth0", "ip-addresses": "<not compared>" }]);
  });
});
