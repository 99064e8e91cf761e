/**
 * `npm run bench`: every bench in its full configuration, then bench/results/latest.md.
 *
 *   npm run bench                       # all: oci-convert, upload, pulumi-up, task-latency
 *   npm run bench -- upload task-latency  # a subset (latest.md is still written)
 *   npm run bench -- --smoke            # the tiny configurations (what test/bench runs)
 *
 * Ratios only mean something within one run (the machines are shared and loaded); see
 * bench/README.md.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { BenchResult, REPO, fmt, log, renderResult } from "./lib";
import { OCI_FULL, OCI_SMOKE, runOciConvert } from "./oci-convert";
import { UPLOAD_FULL, UPLOAD_SMOKE, runUpload } from "./upload";
import { PULUMI_FULL, PULUMI_SMOKE, runPulumiUp } from "./pulumi-up";
import { LATENCY_FULL, LATENCY_SMOKE, runTaskLatency } from "./task-latency";

const ANALYSIS = path.join(REPO, "bench", "results", "analysis.md");

export const BENCHES: Record<string, { full: () => Promise<BenchResult>; smoke: () => Promise<BenchResult> }> = {
  "oci-convert": { full: () => runOciConvert(OCI_FULL), smoke: () => runOciConvert(OCI_SMOKE) },
  upload: { full: () => runUpload(UPLOAD_FULL), smoke: () => runUpload(UPLOAD_SMOKE) },
  "pulumi-up": { full: () => runPulumiUp(PULUMI_FULL), smoke: () => runPulumiUp(PULUMI_SMOKE) },
  "task-latency": { full: () => runTaskLatency(LATENCY_FULL), smoke: () => runTaskLatency(LATENCY_SMOKE) },
};

function summaryTable(results: BenchResult[]): string[] {
  const out = ["| bench | measure | ours | peer / floor | ratio | target | met |", "|---|---|---|---|---|---|---|"];
  for (const r of results) {
    for (const x of r.ratios) out.push(`| ${r.name} | ${x.name} | ${fmt(x.ours)} ${x.unit} | ${fmt(x.peer)} ${x.unit} | ${fmt(x.ratio)}x | ${x.target} | ${x.met ? "yes" : "**no**"} |`);
    for (const m of r.metrics) if (m.target) out.push(`| ${r.name} | ${m.name.trim()} | ${m.value} | | | ${m.target} | ${m.met === undefined ? "" : m.met ? "yes" : "**no**"} |`);
  }
  return out;
}

function machine(): string {
  const cpus = os.cpus();
  const load = os.loadavg().map((l) => l.toFixed(2)).join(" ");
  let tools = "";
  try {
    const v = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: "utf8" }).split("\n")[0].trim();
    tools = `skopeo ${v("skopeo", ["--version"]).replace(/^skopeo version /, "")}, umoci ${v("umoci", ["--version"]).replace(/^umoci version /, "")}, ${v("tar", ["--version"])}, gzip ${v("gzip", ["--version"]).replace(/^gzip /, "")}, ${v("curl", ["--version"]).split(" ").slice(0, 2).join(" ")}`;
  } catch {
    tools = "(tool versions unavailable)";
  }
  return `${cpus.length} x ${cpus[0]?.model ?? "cpu"}, ${fmt(os.totalmem() / 2 ** 30, 0)} GiB RAM, load average at start ${load}; node ${process.version}; ${tools}`;
}

export async function main(argv: string[]): Promise<number> {
  const smoke = argv.includes("--smoke");
  const names = argv.filter((a) => !a.startsWith("--"));
  for (const n of names) if (!BENCHES[n]) throw new Error(`unknown bench '${n}' (${Object.keys(BENCHES).join(", ")})`);
  const chosen = names.length ? names : Object.keys(BENCHES);
  const env = machine();
  const started = new Date();
  const results: BenchResult[] = [];
  const failures: string[] = [];
  for (const n of chosen) {
    log(`=== ${n}${smoke ? " (smoke)" : ""}`);
    try {
      const r = await BENCHES[n][smoke ? "smoke" : "full"]();
      results.push(r);
      console.log(renderResult(r));
    } catch (e) {
      failures.push(`${n}: ${(e as Error).stack ?? e}`);
      log(`${n} failed: ${(e as Error).message}`);
    }
  }
  const md = [
    `# Benchmark results${smoke ? " (smoke configuration — not meaningful)" : ""}`,
    "",
    `Run ${started.toISOString()} – ${new Date().toISOString()} by \`npm run bench${names.length ? ` -- ${names.join(" ")}` : ""}${smoke ? " -- --smoke" : ""}\`.`,
    `Machine: ${env}.`,
    "",
    "Shared 2-core machine loaded by other work: absolute times are noise; only ratios of ours and the peer measured",
    "in the same run (interleaved) mean something. Targets are reported, never asserted.",
    "",
    "## Summary",
    "",
    ...summaryTable(results),
    "",
    ...results.map(renderResult),
    ...(failures.length ? ["## Failures", "", "```", ...failures, "```", ""] : []),
    // Hand-written findings (where the time goes for missed targets, changes made), kept
    // across runs; re-read it against the numbers above after a new run.
    ...(!smoke && fs.existsSync(ANALYSIS) ? [fs.readFileSync(ANALYSIS, "utf8")] : []),
  ].join("\n");
  const outDir = path.join(REPO, "bench", "results");
  fs.mkdirSync(outDir, { recursive: true });
  const file = path.join(outDir, smoke ? "smoke.md" : "latest.md");
  fs.writeFileSync(file, md);
  log(`wrote ${path.relative(REPO, file)}`);
  return failures.length ? 1 : 0;
}

if (require.main === module) {
  main(process.argv.slice(2))
    .then((code) => process.exit(code))
    .catch((e) => {
      console.error(e);
      process.exit(1);
    });
}
