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
      config: { "proxmox:endpoint": sb.endpoint, "proxmox:apiToken": { value: sb.apiToken, secret: true }, "proxmox:tlsFingerprint": sb.tlsFingerprint },
    });
    const created = await stack.run(["up", "--yes", "--skip-preview", "--json"], { allowFailure: true });
    expect(created.code, created.stderr.slice(-3000) + created.stdout.slice(-3000)).to.equal(0);

    stack.writeProgram(program(1));
    const preview = await stack.run(["preview", "--json"], { allowFailure: true });
    expect(preview.code, preview.stderr.slice(-3000)).to.equal(0);
    const up = await stack.run(["up", "--yes", "--skip-preview", "--json"], { allowFailure: true });
    expect(up.code, up.stderr.slice(-3000) + up.stdout.slice(-3000)).to.equal(0);
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
