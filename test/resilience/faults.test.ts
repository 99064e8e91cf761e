/**
 * Resilience, in process: the FULL fault matrix — every fault kind against create, update,
 * migrate, snapshot, upload and delete, with the handlers run exactly as the provider runs
 * them against the sandbox. Each row: the first `up` either survives the fault or fails
 * with a message that says what happened; the re-run converges; a preview after it shows
 * nothing; refresh finds no drift; and the sandbox holds exactly what state says (no
 * orphan or duplicate CT, no orphan volume/snapshot/template, data markers intact).
 * Transport faults (resets, 502/503/596) and an expiring ticket must be survived outright:
 * that is what the client's retry rules promise. The table is printed at the end.
 */
import { expect } from "chai";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { startSandbox } from "../../sandbox";
import { FAULTS, OPERATIONS, printTable, viaCli, type Row } from "./matrix";
import { runRow, type Env } from "./scenarios";
import { tarGz, useSandbox } from "./world";

const MUST_SURVIVE = new Set(["reset-before", "reset-after", "502", "503", "596", "no-worker", "ticket-expires"]);

describe("resilience: fault matrix (in process, every row)", function () {
  this.timeout(10 * 60 * 1000);
  let env: Env;
  const rows: Row[] = [];

  before(async () => {
    const sb = await startSandbox({ port: 0, nodes: ["pve1", "pve2"], taskDurationMs: 5, authFailureDelayMs: 0 });
    const client = useSandbox(sb, "token");
    const apl = (await client.storage.aplinfo("pve1")).find((a) => a.template.startsWith("alpine"))!;
    await client.storage.aplDownloadAndWait("pve1", "shared-nfs", apl.template);
    env = { sb, template: `shared-nfs:vztmpl/${apl.template}`, dir: fs.mkdtempSync(path.join(os.tmpdir(), "resilience-")), tarball: await tarGz() };
  });
  after(async () => {
    if (rows.length) printTable(`Fault matrix, in process (${rows.length} rows)`, rows);
    await env?.sb.stop();
    if (env?.dir) fs.rmSync(env.dir, { recursive: true, force: true });
  });

  let n = 0;
  for (const fault of FAULTS) {
    for (const op of OPERATIONS) {
      it(`${fault} during ${op}`, async () => {
        const row = { ...(await runRow(env, op, fault, `m${n++}`)), cli: viaCli(fault, op) };
        rows.push(row);
        if (MUST_SURVIVE.has(fault) && !row.outcome.startsWith("n/a")) {
          expect(row.outcome, `${fault} during ${op} should be survived by the client's retry rules; first up said: ${row.firstError}`).to.match(/^survived/);
        }
      });
    }
  }

  it("the matrix is complete and the sandbox saw no schema violation", async () => {
    expect(rows.length, "rows run").to.equal(FAULTS.length * OPERATIONS.length);
    const applicable = rows.filter((r) => !r.outcome.startsWith("n/a"));
    expect(applicable.every((r) => /^(survived|failed clearly)/.test(r.outcome))).to.equal(true);
    const c = await env.sb.admin.counters();
    expect(c.violationCount, JSON.stringify(c.violations.slice(0, 3))).to.equal(0);
    console.log(`      faults injected: ${applicable.length}, survived or converged: ${applicable.length}, n/a: ${rows.length - applicable.length}`);
  });
});
