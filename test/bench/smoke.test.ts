/**
 * The benchmarks keep working: each bench runs in its tiny configuration (seconds) and must
 * produce its ratios and metrics. The targets are NOT asserted here (they are for
 * bench/results/latest.md, made by `npm run bench`); only that every number came out.
 * Needs dist/ (npm test builds it) and the Debian tools of the OCI tests plus curl.
 */
import { expect } from "chai";
import type { BenchResult } from "../../bench/lib";
import { renderResult } from "../../bench/lib";
import { BENCHES } from "../../bench/run";

function checkResult(r: BenchResult, ratios: number): void {
  expect(r.ratios, `${r.name} ratios`).to.have.length(ratios);
  for (const x of r.ratios) {
    expect(Number.isFinite(x.ours) && x.ours >= 0, `${r.name}: ${x.name} ours=${x.ours}`).to.equal(true);
    expect(Number.isFinite(x.peer) && x.peer > 0, `${r.name}: ${x.name} peer=${x.peer}`).to.equal(true);
    expect(Number.isFinite(x.ratio), `${r.name}: ${x.name} ratio=${x.ratio}`).to.equal(true);
    expect(x.target, `${r.name}: ${x.name} has a target`).to.be.a("string").and.not.equal("");
  }
  for (const m of r.metrics) expect(m.value, `${r.name}: ${m.name}`).to.not.match(/NaN|undefined|Infinity/);
  expect(renderResult(r)).to.include(`## ${r.name}`);
}

describe("bench smoke: every benchmark runs and reports its ratios", function () {
  this.timeout(180_000);

  it("oci-convert: ours .tar.gz vs the pigz floor and skopeo+umoci+tar, .tar.zst vs the zstd floor, with our peak RSS", async () => {
    const r = await BENCHES["oci-convert"].smoke();
    checkResult(r, 3);
    expect(r.metrics.map((m) => m.name)).to.include("our peak RSS (max of all runs, gz and zst)");
    expect(r.notes.join("\n")).to.match(/CPU time .*ours \.tar\.gz [\d.]+ s CPU/);
  });

  it("upload: our client vs curl -F to the sandbox in another process, with the client's RSS", async () => {
    const r = await BENCHES.upload.smoke();
    checkResult(r, 1);
  });

  it("pulumi-up: up, preview and destroy of Containers vs Noops through the real CLI, with request counts and the provider host's RSS", async () => {
    const r = await BENCHES["pulumi-up"].smoke();
    checkResult(r, 3);
    const creates = r.metrics.find((m) => m.name.includes("creates (POST"));
    expect(creates?.value, "one create request per container").to.equal("1.00");
    expect(r.metrics.find((m) => m.name.includes("`pulumi preview`"))?.value).to.match(/^\d+$/);
    expect(r.metrics.find((m) => m.name.includes("other requests"))?.value).to.match(/^\d+\.\d\d$/);
    // The dynamic-provider process was found and sampled.
    expect(r.metrics.find((m) => m.name.includes("provider host peak RSS"))?.value).to.match(/^[1-9]\d*\.\d MiB/);
    expect(r.notes.join("\n")).to.include("provider host (node)");
  });

  it("task-latency: our adaptive wait vs a fixed 1 s poll on the same tasks", async () => {
    const r = await BENCHES["task-latency"].smoke();
    checkResult(r, 1);
  });
});
