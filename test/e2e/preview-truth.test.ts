/**
 * Preview truth (issue 15): what `pulumi preview` says it will do to each resource — same,
 * update or replace, and the replace reasons — is what `pulumi up` then does, for a change
 * made (a) with known values and (b) with values unknown at preview time (an output of a
 * resource changed in the same run). A CI preview that shows a data-losing replace which
 * `up` will not do (or hides one it will do) is the worst thing a preview can show.
 *
 * Two layers, both in this file:
 *
 * 1. THROUGH THE REAL CLI (first describe): one stack on a PVE 8.4 sandbox holds, for each
 *    input listed in CLI_CASES, a pair of resources: `<case>-k` gets the new value as a
 *    literal, `<case>-u` through `u()`, an output of the Noop `src` that changes in the same
 *    run (so the value is unknown in the preview). One `preview --json` and one `up --json`
 *    cover every pair; then a preview of the unchanged program must show no change at all
 *    (convergence: snapshot descriptions, an OciImage-based Container on PVE 8).
 *    Also: a Snapshot whose Container has a pending update, a Container on an OciImage
 *    updated in place, and a too-short password that the CLI must not echo.
 * 2. IN PROCESS (second describe): every other input of Container, Snapshot, Template and
 *    OciImage. Each handler's `diff` is called with the new value known and unknown (the
 *    engine's marker), the two must agree on update vs replace and the reasons, and for
 *    Container and Snapshot the update path then runs against the in-process sandbox and
 *    converges (diff after = no change, refresh = no drift).
 */
import { expect } from "chai";
import * as fs from "node:fs";
import * as path from "node:path";
import { startSandbox, type SandboxHandle } from "../../sandbox";
import { PveClient } from "../../provider/proxmox/client";
import { pulumiPath } from "../support/cli";
import { PulumiStack, urnName, type CommandResult } from "../support/pulumi";
import { templateTarGz } from "../support/fixtures";
import { writeOciLayout, tmpDir } from "../oci/support";
import containerHandler from "../../provider/resources/container/handler";
import snapshotHandler from "../../provider/resources/snapshot/handler";
import templateHandler from "../../provider/resources/template/handler";
import ociHandler from "../../provider/resources/oci-image/handler";
import noopHandler from "../../provider/resources/noop";
import { UNKNOWN } from "../../provider/resources/validation";
import { providerClient } from "../../provider/resources/operation";
import { useSandboxProvider, applianceTemplate } from "../support/provider";

type Kind = "Container" | "Snapshot" | "Template" | "OciImage" | "Noop";

/** One input changed on one resource: `before` in the first program, `after` in the second (TS source). */
interface CliCase {
  name: string;
  kind: Kind;
  /** Other inputs, TS source of an object literal body. */
  base: string;
  input: string;
  before: string;
  after: string;
  /** What `up` is expected to do (asserted too, so a case cannot pass by changing nothing). */
  expect: "update" | "replace";
}

const CT = (extra = "") => `node: "pve1", rootfs: { storage: "local-lvm", size: "1G" }, memory: { dedicated: 128, swap: 0 }, started: false, ${extra}`;

function cliCases(tmplA: string, tmplB: string): CliCase[] {
  const ct = (input: string, before: string, after: string, expect: "update" | "replace", extra = `template: ${JSON.stringify(tmplA)},`): CliCase => ({
    name: `ct-${input.toLowerCase()}`, kind: "Container", base: CT(extra), input, before, after, expect,
  });
  return [
    ct("hostname", `"h-a"`, `"h-b"`, "update"),
    ct("description", `"first"`, `"second"`, "update"),
    ct("tags", `["a"]`, `["a", "b"]`, "update"),
    ct("memory", `{ dedicated: 128, swap: 0 }`, `{ dedicated: 256, swap: 64 }`, "update"),
    ct("rootfs", `{ storage: "local-lvm", size: "1G" }`, `{ storage: "local-lvm", size: "2G" }`, "update"),
    ct("mountPoints", `[]`, `[{ slot: 0, storage: "local-lvm", size: "1G", path: "/data" }]`, "update"),
    ct("networks", `[{ name: "eth0", bridge: "vmbr0", ip: "10.9.0.2/24" }]`, `[{ name: "eth0", bridge: "vmbr0", ip: "10.9.0.3/24" }]`, "update"),
    ct("features", `{ nesting: false }`, `{ nesting: true }`, "update"),
    ct("started", `false`, `true`, "update"),
    ct("template", JSON.stringify(tmplA), JSON.stringify(tmplB), "replace", ""),
    ct("unprivileged", `true`, `false`, "replace"),
    { name: "snap-description", kind: "Snapshot", base: "", input: "description", before: `"first"`, after: `"second"`, expect: "update" },
    { name: "snap-name", kind: "Snapshot", base: "", input: "name", before: `"s-one"`, after: `"s-two"`, expect: "replace" },
    { name: "snap-rollbacktrigger", kind: "Snapshot", base: "", input: "rollbackTrigger", before: `1`, after: `2`, expect: "update" },
    { name: "tmpl-timeouts", kind: "Template", base: "", input: "timeouts", before: `{ create: 600 }`, after: `{ create: 700 }`, expect: "update" },
    { name: "tmpl-filename", kind: "Template", base: "", input: "fileName", before: `"one"`, after: `"two"`, expect: "replace" },
    { name: "oci-timeouts", kind: "OciImage", base: "", input: "timeouts", before: `{ create: 600 }`, after: `{ create: 700 }`, expect: "update" },
    { name: "oci-filename", kind: "OciImage", base: "", input: "fileName", before: `"one"`, after: `"two"`, expect: "replace" },
    { name: "noop-value", kind: "Noop", base: "", input: "value", before: `"a"`, after: `"b"`, expect: "update" },
    { name: "noop-replace", kind: "Noop", base: "replaceOnChange: true,", input: "value", before: `"a"`, after: `"b"`, expect: "replace" },
    { name: "noop-secret", kind: "Noop", base: `value: 1,`, input: "secretValue", before: `"s3cret-a"`, after: `"s3cret-b"`, expect: "update" },
  ];
}

/** What one resource's steps say: same/create/update/replace/delete, and the replace reasons. */
interface Verdict {
  op: string;
  reasons: string[];
}

function verdictOf(steps: Array<{ op: string; urn: string; reasons?: string[] }>, name: string): Verdict {
  const mine = steps.filter((s) => urnName(s.urn) === name);
  const ops = mine.map((s) => s.op);
  const op = ops.some((o) => o === "replace" || o === "create-replacement" || o === "delete-replaced") ? "replace" : (ops.find((o) => o !== "same") ?? "same");
  const reasons = [...new Set(mine.flatMap((s) => s.reasons ?? []))].sort();
  return { op, reasons: op === "replace" ? reasons : [] };
}

/** `preview --json`: one document with `steps` (unchanged resources are not listed). */
function previewSteps(r: CommandResult) {
  const doc = JSON.parse(r.stdout) as { steps?: Array<{ op: string; urn: string; replaceReasons?: string[] }>; diagnostics?: unknown[] };
  return (doc.steps ?? []).map((s) => ({ op: s.op, urn: s.urn, reasons: s.replaceReasons }));
}

/** `up --json`: engine events; `keys` of a step are its replace reasons. */
function upSteps(r: CommandResult) {
  const out: Array<{ op: string; urn: string; reasons?: string[] }> = [];
  for (const line of r.stdout.split("\n")) {
    if (!line.trim().startsWith("{")) continue;
    const ev = JSON.parse(line) as { resourcePreEvent?: { metadata: { op: string; urn: string; keys?: string[] } } };
    const m = ev.resourcePreEvent?.metadata;
    if (m) out.push({ op: m.op, urn: m.urn, reasons: m.keys });
  }
  return out;
}

/** Error diagnostics of a `--json` run, with the resource they belong to (for failure messages). */
function errorsOf(r: CommandResult): string {
  const out: string[] = [];
  for (const line of r.stdout.split("\n")) {
    if (!line.includes('"diagnosticEvent"')) continue;
    const d = (JSON.parse(line) as { diagnosticEvent: { urn?: string; message?: string; severity?: string } }).diagnosticEvent;
    if (d.severity === "error") out.push(`${d.urn ? urnName(d.urn) : "(stack)"}: ${d.message}`);
  }
  return out.join("\n") + "\n" + r.stderr.slice(-2000);
}

describe("preview truth through the real Pulumi CLI (PVE 8.4 sandbox)", function () {
  this.timeout(10 * 60 * 1000);
  let sb: SandboxHandle;
  let client: PveClient;
  let stack: PulumiStack | undefined;
  let cases: CliCase[];
  let dir: string;
  let tmplA: string;
  let tmplB: string;

  before(async function () {
    this.timeout(10 * 60 * 1000);
    await pulumiPath();
    sb = await startSandbox({ port: 0, nodes: ["pve1"], taskDurationMs: 5, authFailureDelayMs: 0, pveVersion: "8.4" });
    client = PveClient.connect({ endpoint: sb.endpoint, apiToken: sb.apiToken, tlsFingerprint: sb.tlsFingerprint, logLevel: "silent" });
    const apl = await client.storage.aplinfo("pve1");
    for (const prefix of ["alpine", "debian"]) await client.storage.aplDownloadAndWait("pve1", "shared-nfs", apl.find((a) => a.template.startsWith(prefix))!.template);
    tmplA = `shared-nfs:vztmpl/${apl.find((a) => a.template.startsWith("alpine"))!.template}`;
    tmplB = `shared-nfs:vztmpl/${apl.find((a) => a.template.startsWith("debian"))!.template}`;
    dir = tmpDir("preview-truth-");
    fs.writeFileSync(path.join(dir, "t.tar.gz"), await templateTarGz());
    await writeOciLayout(path.join(dir, "layout"), {
      v1: { layers: [{ entries: [{ name: "etc/", type: "dir" }, { name: "etc/os-release", content: "ID=alpine\nVERSION_ID=3.20\n" }] }], config: { Entrypoint: ["/bin/app"], Env: ["A=1"] } },
    });
    cases = cliCases(tmplA, tmplB);
  });
  after(async () => {
    await stack?.remove();
    client?.close();
    await sb?.stop();
  });

  /** The program: phase 0 has every `before`; phase 1 every `after` (`-u` ones through `u()`). */
  function program(phase: 0 | 1): string {
    const lines = [
      `import { Container, Snapshot, Template, OciImage, Noop } from "pulumi-proxmox-lxc";`,
      `const src = new Noop("src", { value: ${phase} });`,
      // Unknown at preview whenever src changes: revision is computed by its update.
      `const u = <T>(v: T) => src.revision.apply(() => v);`,
    ];
    for (const c of cases) {
      for (const variant of ["k", "u"] as const) {
        const name = `${c.name}-${variant}`;
        const value = phase === 0 ? c.before : variant === "k" ? c.after : `u(${c.after})`;
        const set = `${c.input}: ${value}`;
        const file = (stem: string) => JSON.stringify(`${name}-${stem}`);
        switch (c.kind) {
          case "Container":
            lines.push(`new Container(${JSON.stringify(name)}, { ${c.base} ${set} });`);
            break;
          case "Snapshot":
            lines.push(`{ const ct = new Container(${JSON.stringify(`${name}-ct`)}, { ${CT(`template: ${JSON.stringify(tmplA)},`)} });`);
            lines.push(`  new Snapshot(${JSON.stringify(name)}, { container: ct, ${c.input === "name" ? "" : `name: "s-one",`} ${c.base} ${set} }); }`);
            break;
          case "Template": {
            const fileName = c.input === "fileName" ? "" : `fileName: ${file("t.tar.gz")},`;
            const setFile = c.input === "fileName" ? `fileName: ${phase === 0 ? file("one.tar.gz") : variant === "k" ? file("two.tar.gz") : `u(${file("two.tar.gz")})`}` : set;
            lines.push(`new Template(${JSON.stringify(name)}, { node: "pve1", storage: "local", path: ${JSON.stringify(path.join(dir, "t.tar.gz"))}, ${fileName} ${setFile} });`);
            break;
          }
          case "OciImage": {
            const fileName = c.input === "fileName" ? "" : `fileName: ${file("img.tar.gz")},`;
            const setFile = c.input === "fileName" ? `fileName: ${phase === 0 ? file("one.tar.gz") : variant === "k" ? file("two.tar.gz") : `u(${file("two.tar.gz")})`}` : set;
            lines.push(`new OciImage(${JSON.stringify(name)}, { node: "pve1", source: ${JSON.stringify(`oci:${path.join(dir, "layout")}:v1`)}, mode: "client", ${fileName} ${setFile} });`);
            break;
          }
          case "Noop":
            lines.push(`new Noop(${JSON.stringify(name)}, { ${c.base} ${set} });`);
            break;
        }
      }
    }
    // Issue 15.2: a Snapshot whose Container has a pending (in-place) update stays as it is.
    lines.push(`const followed = new Container("follow-ct", { ${CT(`template: ${JSON.stringify(tmplA)},`)} hostname: ${phase === 0 ? `"f-a"` : `u("f-b")`} });`);
    lines.push(`new Snapshot("follow-snap", { container: followed, name: "kept", description: "taken once" });`);
    // Issue 15.1: a Container on an OciImage (PVE 8: no entrypoint/env) whose image is updated in place.
    lines.push(`const img = new OciImage("oci-base", { node: "pve1", source: ${JSON.stringify(`oci:${path.join(dir, "layout")}:v1`)}, mode: "client", fileName: "oci-base.tar.gz", timeouts: { create: ${phase === 0 ? 600 : 700} } });`);
    lines.push(`new Container("oci-ct", { ${CT()} template: img });`);
    return lines.join("\n") + "\n";
  }

  const expected: Record<string, string> = {};

  it("every preview step (same/update/replace and reasons) is what up then does, with known and unknown values", async () => {
    const t0 = Date.now();
    stack = await PulumiStack.create({
      programSource: program(0),
      // root@pam by ticket: feature flags are root-only (API tokens are never root).
      config: { "proxmox:endpoint": sb.endpoint, "proxmox:username": sb.username, "proxmox:password": { value: sb.password, secret: true }, "proxmox:tlsFingerprint": sb.tlsFingerprint },
    });
    const created = await stack.run(["up", "--yes", "--skip-preview", "--json"], { allowFailure: true });
    expect(created.code, errorsOf(created)).to.equal(0);

    stack.writeProgram(program(1));
    const preview = await stack.run(["preview", "--json"], { allowFailure: true });
    expect(preview.code, preview.stderr.slice(-3000)).to.equal(0);
    const up = await stack.run(["up", "--yes", "--skip-preview", "--json"], { allowFailure: true });
    expect(up.code, errorsOf(up)).to.equal(0);
    const p = previewSteps(preview);
    const u = upSteps(up);

    const rows: string[] = [];
    const wrong: string[] = [];
    const names: Array<readonly [string, string]> = cases.flatMap((c) => [`${c.name}-k`, `${c.name}-u`].map((n) => [n, c.expect] as const));
    names.push(["follow-ct", "update"], ["follow-snap", "same"], ["oci-base", "update"], ["oci-ct", "same"]);
    for (const [name, exp] of names) {
      const pv = verdictOf(p, name);
      const uv = verdictOf(u, name);
      expected[name] = exp;
      rows.push(`${name.padEnd(26)} preview ${pv.op.padEnd(8)} [${pv.reasons.join(",")}]  up ${uv.op.padEnd(8)} [${uv.reasons.join(",")}]`);
      if (pv.op !== uv.op || JSON.stringify(pv.reasons) !== JSON.stringify(uv.reasons)) wrong.push(`${name}: preview ${pv.op} [${pv.reasons}] but up ${uv.op} [${uv.reasons}]`);
      if (uv.op !== exp) wrong.push(`${name}: up did ${uv.op}, the case expects ${exp}`);
    }
    console.log(`      ${names.length} resources, known + unknown changes, ${((Date.now() - t0) / 1000).toFixed(0)} s:\n        ` + rows.join("\n        "));
    expect(wrong).to.deep.equal([]);
  });

  it("then previews no change at all (converged), also for snapshot descriptions and OciImage-based Containers", async () => {
    expect(stack, "the matrix ran").to.not.equal(undefined);
    const again = await stack!.run(["preview", "--json"], { allowFailure: true });
    expect(again.code, again.stderr.slice(-3000)).to.equal(0);
    const changed = previewSteps(again).filter((s) => s.op !== "same" && !s.urn.includes("pulumi:pulumi:Stack") && !s.urn.includes("pulumi:providers:"));
    expect(changed.map((s) => `${urnName(s.urn)}: ${s.op}`)).to.deep.equal([]);
  });

  it("a too-short password fails check without the CLI printing the value", async () => {
    const secret = "Zq7x";
    const bad = await PulumiStack.create({
      programSource: `import { Container } from "pulumi-proxmox-lxc";\nnew Container("pw", { ${CT(`template: ${JSON.stringify(tmplA)},`)} password: ${JSON.stringify(secret)} });\n`,
      config: { "proxmox:endpoint": sb.endpoint, "proxmox:apiToken": { value: sb.apiToken, secret: true }, "proxmox:tlsFingerprint": sb.tlsFingerprint },
    });
    try {
      const r = await bad.run(["preview"], { allowFailure: true });
      expect(r.code).to.not.equal(0);
      expect(r.stdout + r.stderr).to.match(/password: must be at least 5 characters/);
      expect(r.stdout + r.stderr).to.not.include(secret);
    } finally {
      await bad.remove();
    }
  });
});

// ---------------------------------------------------------------------------------------
// 2. In process: the remaining inputs, handler diff with known vs unknown values, then the
//    update path against the sandbox (Container, Snapshot) and convergence.

type Handler = typeof containerHandler;
interface Verdict2 {
  changes: boolean;
  replaces: string[];
}

/** diff with the new value known, and with it unknown (the engine's marker, check leaves inputs raw). */
async function bothDiffs(h: Handler, id: string, olds: Record<string, unknown>, next: Record<string, unknown>, input: string): Promise<{ known: Verdict2; unknown: Verdict2; inputs: Record<string, unknown> }> {
  const k = await h.check!({}, next);
  expect(k.failures ?? [], `${input}: check of the known value`).to.deep.equal([]);
  const u = await h.check!({}, { ...next, [input]: UNKNOWN });
  expect(u.failures ?? [], `${input}: check of the unknown value`).to.deep.equal([]);
  const dk = await h.diff!(id, olds, k.inputs);
  const du = await h.diff!(id, olds, u.inputs);
  return { known: { changes: !!dk.changes, replaces: [...(dk.replaces ?? [])].sort() }, unknown: { changes: !!du.changes, replaces: [...(du.replaces ?? [])].sort() }, inputs: k.inputs };
}

describe("preview truth in process: every other input (handler diff known vs unknown, then the update path)", function () {
  this.timeout(5 * 60 * 1000);
  let sb: SandboxHandle;
  let template: string;
  let tarFile: string;
  const table: string[] = [];

  before(async () => {
    sb = await startSandbox({ port: 0, nodes: ["pve1", "pve2"], taskDurationMs: 2, authFailureDelayMs: 0 });
    // Ticket auth as root@pam: devices and similar root-only settings are part of the matrix.
    useSandboxProvider(sb, { "proxmox:apiToken": "", "proxmox:username": sb.username, "proxmox:password": sb.password });
    template = await applianceTemplate("alpine");
    tarFile = path.join(tmpDir("preview-truth-ip-"), "t.tar.gz");
    fs.writeFileSync(tarFile, await templateTarGz());
    for (const poolid of ["p1", "p2"]) await providerClient().post("/pools", { poolid });
  });
  after(async () => {
    if (table.length) console.log("      " + table.join("\n      "));
    expect((await sb.admin.counters()).violationCount, "requests the PVE schema rejects").to.equal(0);
    await sb?.stop();
  });

  /** Inputs changed in process: [input, before, after, expected up step]. */
  const CONTAINER: Array<[string, unknown, unknown, "update" | "replace", Record<string, unknown>?]> = [
    ["node", "pve1", "pve2", "update"],
    ["vmid", 4100, 4101, "replace"],
    ["ostype", "alpine", "debian", "update"],
    ["arch", "amd64", "arm64", "update"],
    ["cpu", { cores: 1 }, { cores: 2, limit: 1 }, "update"],
    ["dns", { servers: ["10.0.0.1"] }, { servers: ["10.0.0.2"], searchDomains: ["example.test"] }, "update"],
    ["startOnBoot", false, true, "update"],
    ["startup", { order: 1 }, { order: 2, up: 5 }, "update"],
    ["console", { mode: "tty" }, { mode: "shell", ttys: 3 }, "update"],
    ["timezone", "UTC", "Europe/Berlin", "update"],
    ["devices", [{ path: "/dev/null" }], [{ path: "/dev/zero", mode: "0666" }], "update"],
    ["entrypoint", "/bin/a", "/bin/b --x", "update"],
    ["env", { A: "1" }, { A: "2", B: "3" }, "update"],
    ["protection", false, true, "update"],
    ["pool", "p1", "p2", "update"],
    ["password", "first-pass", "second-pass", "update"],
    ["sshPublicKeys", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA1 a@b", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA2 a@b", "update"],
    ["haManaged", false, true, "update"],
    ["pendingChanges", "reboot", "leave", "update"],
    ["timeouts", { create: 600 }, { create: 700 }, "update"],
    ["safetySnapshot", false, true, "update"],
    ["adopt", false, true, "update", { vmid: 4200 }],
    ["resourceName", "a", "b", "update"],
  ];

  it("Container: known and unknown agree on update vs replace; the update converges", async () => {
    const base = { node: "pve1", template, rootfs: { storage: "local-lvm", size: "1G" }, memory: { dedicated: 128, swap: 0 }, started: false };
    for (const [input, before, after, exp, extra] of CONTAINER) {
      const start = { ...base, ...extra, [input]: before };
      const c = await containerHandler.check!({}, start);
      expect(c.failures ?? [], input).to.deep.equal([]);
      const ct = await containerHandler.create(c.inputs);
      const next = { ...start, [input]: after };
      const d = await bothDiffs(containerHandler, ct.id, ct.outs, next, input);
      table.push(`Container.${input.padEnd(15)} known ${d.known.replaces.length ? `replace [${d.known.replaces}]` : d.known.changes ? "update" : "same"}  unknown ${d.unknown.replaces.length ? `replace [${d.unknown.replaces}]` : d.unknown.changes ? "update" : "same"}`);
      expect(d.known.changes, input).to.equal(true);
      expect(d.unknown.changes, input).to.equal(true);
      expect(d.unknown.replaces, input).to.deep.equal(d.known.replaces);
      expect(d.known.replaces.length ? "replace" : "update", input).to.equal(exp);
      let outs = ct.outs as Record<string, unknown>;
      if (exp === "update") {
        outs = (await containerHandler.update!(ct.id, ct.outs, d.inputs)).outs as Record<string, unknown>;
        expect((await containerHandler.diff!(ct.id, outs, d.inputs)).changes, `${input}: converged after up`).to.equal(false);
        const read = await containerHandler.read!(ct.id, outs);
        expect((await containerHandler.diff!(ct.id, read.props!, d.inputs)).changes, `${input}: no drift on refresh`).to.equal(false);
        outs = read.props!;
      }
      if (outs.protection) outs = (await containerHandler.update!(ct.id, outs, { ...d.inputs, protection: false })).outs as Record<string, unknown>;
      await containerHandler.delete!(ct.id, outs);
    }
  });

  it("Snapshot: known and unknown agree; node alone is no change; the update converges", async () => {
    const client = providerClient();
    const { vmid } = await client.lxc.createContainer({ node: "pve1", config: { ostemplate: template, rootfs: "local-lvm:1", memory: 128 } });
    const cases: Array<[string, unknown, unknown, "same" | "update" | "replace"]> = [
      ["node", "pve1", "pve2", "same"],
      ["vmid", vmid, vmid + 1, "replace"],
      ["startAfterRollback", false, true, "update"],
      ["timeouts", { create: 600 }, { create: 700 }, "update"],
      ["resourceName", "a", "b", "update"],
    ];
    const base = { node: "pve1", vmid, name: "matrix" };
    const c = await snapshotHandler.check!({}, base);
    const snap = await snapshotHandler.create(c.inputs);
    for (const [input, before, after, exp] of cases) {
      const start = { ...base, [input]: before };
      const olds = input === "node" || input === "vmid" ? snap.outs : (await snapshotHandler.update!(snap.id, snap.outs, (await snapshotHandler.check!({}, start)).inputs)).outs;
      const d = await bothDiffs(snapshotHandler as Handler, snap.id, olds, { ...start, [input]: after }, input);
      const verdict = (v: Verdict2) => (v.replaces.length ? "replace" : v.changes ? "update" : "same");
      table.push(`Snapshot.${input.padEnd(16)} known ${verdict(d.known)}  unknown ${verdict(d.unknown)}`);
      expect(verdict(d.known), input).to.equal(exp);
      // An unknown node is no change either (the snapshot follows its CT by vmid).
      expect(verdict(d.unknown), input).to.equal(exp);
      expect(d.unknown.replaces, input).to.deep.equal(d.known.replaces);
      if (exp === "update") {
        const outs = (await snapshotHandler.update!(snap.id, olds, d.inputs)).outs;
        expect((await snapshotHandler.diff!(snap.id, outs, d.inputs)).changes, `${input}: converged`).to.equal(false);
      }
    }
    await snapshotHandler.delete!(snap.id, snap.outs);
  });

  it("Noop: replaceOnChange (the one input the CLI part does not change) agrees known and unknown", async () => {
    const olds = { value: "a", replaceOnChange: false, revision: 1 };
    for (const [next, exp] of [[{ value: "a", replaceOnChange: true }, "update"], [{ value: "b", replaceOnChange: true }, "replace"]] as const) {
      const noop = noopHandler as unknown as Handler;
      const dk = await noop.diff!("n", olds, (await noop.check!({}, next)).inputs);
      const du = await noop.diff!("n", olds, (await noop.check!({}, { ...next, replaceOnChange: UNKNOWN })).inputs);
      table.push(`Noop.replaceOnChange→${JSON.stringify(next)} known ${JSON.stringify(dk.replaces)}  unknown ${JSON.stringify(du.replaces)}`);
      expect(dk.replaces?.length ? "replace" : "update").to.equal(exp);
      expect(du.changes).to.equal(true);
      // Unknown replaceOnChange may be true: a changed value may replace, an unchanged one cannot.
      expect(du.replaces ?? []).to.deep.equal(dk.replaces ?? []);
    }
  });

  it("Template and OciImage: known and unknown agree on update vs replace and the reasons (diff level)", async () => {
    const tmpl = await templateHandler.create((await templateHandler.check!({}, { node: "pve1", storage: "local", path: tarFile, fileName: "matrix.tar.gz" })).inputs);
    const base = { node: "pve1", storage: "local", path: tarFile, fileName: "matrix.tar.gz" };
    const tcases: Array<[string, unknown]> = [
      ["node", "pve2"],
      ["storage", "shared-nfs"],
      ["path", tarFile.replace(/t\.tar\.gz$/, "other.tar.gz")],
      ["existing", "adopt"],
      ["verifyCertificates", false],
      ["checksumAlgorithm", "sha256"],
      ["resourceName", "x"],
    ];
    fs.copyFileSync(tarFile, tarFile.replace(/t\.tar\.gz$/, "other.tar.gz"));
    for (const [input, after] of tcases) {
      const next = input === "checksumAlgorithm" ? { ...base, checksum: (tmpl.outs as Record<string, string>).checksum, checksumAlgorithm: after } : { ...base, [input]: after };
      const d = await bothDiffs(templateHandler as Handler, tmpl.id, tmpl.outs, next, input);
      table.push(`Template.${input.padEnd(16)} known ${JSON.stringify(d.known)}  unknown ${JSON.stringify(d.unknown)}`);
      if (d.known.changes) expect(d.unknown.replaces, input).to.deep.equal(d.known.replaces);
      expect(d.unknown.changes, input).to.equal(true);
    }
    // Template url/appliance (switching the source) replace, known or not.
    for (const [input, after] of [["url", "https://example.test/t.tar.gz"], ["appliance", "alpine"]] as const) {
      const d = await bothDiffs(templateHandler as Handler, tmpl.id, tmpl.outs, { node: "pve1", storage: "local", [input]: after }, input);
      table.push(`Template.${input.padEnd(16)} known ${JSON.stringify(d.known)}  unknown ${JSON.stringify(d.unknown)}`);
      expect(d.known.replaces, input).to.include(input);
      expect(d.unknown.replaces, input).to.include(input);
    }
    await templateHandler.delete!(tmpl.id, tmpl.outs);

    // OciImage: diff only (its create path is covered by test/e2e/oci-image and the CLI part above).
    const img = { node: "pve1", storage: "local", source: "registry.example/app:1", mode: "auto", resourceName: "img" };
    const olds = { ...img, volid: "local:vztmpl/app.tar", resolvedMode: "server", resolvedFormat: "oci-archive", imageConfig: { entrypoint: [], cmd: [], env: [] }, entrypoint: "", env: {} };
    const ocases: Array<[string, unknown]> = [
      ["node", "pve2"],
      ["storage", "shared-nfs"],
      ["source", "registry.example/app:2"],
      ["platform", "linux/arm64"],
      ["mode", "client"],
      ["format", "rootfs"],
      ["compression", "zstd"],
      ["credentials", { username: "u", password: "p" }],
      ["dockerConfig", "/nonexistent/config.json"],
      ["insecureRegistry", true],
      ["registryCaCert", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"],
      ["timeouts", { create: 700 }],
    ];
    for (const [input, after] of ocases) {
      const next = input === "compression" ? { ...img, format: "rootfs", mode: "client", [input]: after } : { ...img, [input]: after };
      const k = await ociHandler.check!({}, next);
      if ((k.failures ?? []).length) {
        table.push(`OciImage.${input.padEnd(16)} (value refused by check: ${k.failures![0].reason})`);
        continue;
      }
      const dk = await ociHandler.diff!("local:vztmpl/app.tar", olds, k.inputs);
      const du = await ociHandler.diff!("local:vztmpl/app.tar", olds, (await ociHandler.check!({}, { ...next, [input]: UNKNOWN })).inputs);
      table.push(`OciImage.${input.padEnd(16)} known ${JSON.stringify(dk.replaces)}  unknown ${JSON.stringify(du.replaces)}`);
      expect(du.changes, input).to.equal(true);
      // An unknown input replaces exactly when the known one would (other known inputs never do).
      expect([...(du.replaces ?? [])].filter((r) => r !== input), input).to.deep.equal([...(dk.replaces ?? [])].filter((r) => r !== input));
      expect((du.replaces ?? []).includes(input), input).to.equal((dk.replaces ?? []).includes(input));
    }
  });
});
