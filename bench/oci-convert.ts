/**
 * oci-convert: a multi-layer image (bench/image.ts) → a PVE rootfs `.tar.gz`.
 *
 * - ours:  `node dist/provider/cli/main.js oci template oci:DIR:bench --out X.tar.gz`
 *          (fresh cache dir every run, so nothing is reused), in its own process under
 *          GNU time (wall time, peak RSS incl. the conversion worker thread);
 * - peer:  `skopeo copy oci:DIR:bench oci:COPY:bench` + `umoci unpack --image COPY:bench B`
 *          + `tar -C B/rootfs -I 'gzip -6 -n' -cf X.tar.gz .` (Debian's tools, as root);
 * - floor: `zcat L1 L2 L3 L4 | gzip -6 -n > /dev/null` — decompress every layer and gzip
 *          the stream once: the least work any converter must do (it compresses all layer
 *          bytes, deleted and overwritten ones too, so it is a generous floor).
 * gzip level 6 everywhere (zlib's default, which ours uses; gzip's default).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { makeBenchImage } from "./image";
import { BenchResult, MiB, Timed, cliMain, fastTmpBase, fmt, interleave, log, median, ratio, timed, tmpDir } from "./lib";

export interface OciConvertOptions {
  files: number;
  bytes: number;
  reps: number;
  /** Also run ours once with --cpu-prof and report the top self-time functions. */
  profile?: boolean;
}

export const OCI_FULL: OciConvertOptions = { files: 20_000, bytes: 300 * 1000 * 1000, reps: 3, profile: true };
export const OCI_SMOKE: OciConvertOptions = { files: 300, bytes: 3 * 1000 * 1000, reps: 1 };

export async function runOciConvert(o: OciConvertOptions): Promise<BenchResult> {
  const started = Date.now();
  const base = tmpDir("bench-oci-", fastTmpBase(o.bytes * 4));
  try {
    log(`oci-convert: making the image (${o.files} files, ${fmt(o.bytes / MiB, 0)} MiB) in ${base}`);
    const img = makeBenchImage(path.join(base, "image"), { files: o.files, bytes: o.bytes });
    const main = cliMain();
    let run = 0;
    const ours = async (): Promise<Timed> => {
      const n = ++run;
      const cache = path.join(base, `cache-${n}`);
      const out = path.join(base, `ours-${n}.tar.gz`);
      // Progress lines (one per phase when stderr is not a TTY) give the phase boundaries.
      const marks: Record<string, number> = {};
      const t = await timed(process.execPath, [main, "oci", "template", img.ref, "--out", out, "--cache-dir", cache, "--json"], {
        onStderrLine: (line, at) => {
          const phase = /^(resolving|download|scan|write|done)/.exec(line)?.[1];
          if (phase && marks[phase] === undefined) marks[phase] = at;
        },
      });
      const phases = { "start+resolve": marks.scan, "scan (pass 1)": marks.write - marks.scan, "write (pass 2)": marks.done - marks.write, "deliver+exit": t.ms - marks.done };
      for (const [k, v] of Object.entries(phases)) (ourPhases[k] ??= []).push(v);
      const size = fs.statSync(out).size;
      fs.rmSync(cache, { recursive: true, force: true });
      fs.rmSync(out, { force: true });
      log(`  ours  ${fmt(t.ms / 1000)} s, peak RSS ${fmt(t.maxRssKiB / 1024, 1)} MiB, output ${fmt(size / MiB, 1)} MiB`);
      return t;
    };
    const ourPhases: Record<string, number[]> = {};
    const peerSteps: Record<string, number[]> = { "skopeo copy": [], "umoci unpack": [], "tar czf": [] };
    const peer = async (): Promise<Timed> => {
      const n = ++run;
      const copy = path.join(base, `copy-${n}`);
      const bundle = path.join(base, `bundle-${n}`);
      const out = path.join(base, `peer-${n}.tar.gz`);
      const a = await timed("skopeo", ["copy", "-q", img.ref, `oci:${copy}:bench`]);
      const b = await timed("umoci", ["unpack", "--image", `${copy}:bench`, bundle]);
      const c = await timed("tar", ["-C", path.join(bundle, "rootfs"), "-I", "gzip -6 -n", "-cf", out, "."]);
      peerSteps["skopeo copy"].push(a.ms);
      peerSteps["umoci unpack"].push(b.ms);
      peerSteps["tar czf"].push(c.ms);
      const size = fs.statSync(out).size;
      for (const p of [copy, bundle, out]) fs.rmSync(p, { recursive: true, force: true });
      const t = { ms: a.ms + b.ms + c.ms, maxRssKiB: Math.max(a.maxRssKiB, b.maxRssKiB, c.maxRssKiB), stdout: "", stderr: "" };
      log(`  peer  ${fmt(t.ms / 1000)} s (skopeo ${fmt(a.ms / 1000)}, umoci ${fmt(b.ms / 1000)}, tar ${fmt(c.ms / 1000)}), output ${fmt(size / MiB, 1)} MiB`);
      return t;
    };
    const floor = async (): Promise<Timed> => {
      const t = await timed("sh", ["-c", 'zcat "$@" | gzip -6 -n > /dev/null', "sh", ...img.layers.map((l) => l.path)]);
      log(`  floor ${fmt(t.ms / 1000)} s`);
      return t;
    };
    // A warm-up of each (page cache, binaries), not counted.
    await ours();
    await peer();
    const oursRuns: Timed[] = [];
    const peerRuns: Timed[] = [];
    const floorRuns: Timed[] = [];
    for (let i = 0; i < o.reps; i++) {
      const order = i % 2 === 0 ? [ours, peer, floor] : [floor, peer, ours];
      for (const f of order) {
        const t = await f();
        (f === ours ? oursRuns : f === peer ? peerRuns : floorRuns).push(t);
      }
    }
    const oursMs = median(oursRuns.map((t) => t.ms));
    const peerMs = median(peerRuns.map((t) => t.ms));
    const floorMs = median(floorRuns.map((t) => t.ms));
    const rss = Math.max(...oursRuns.map((t) => t.maxRssKiB)) / 1024;
    const peerRss = Math.max(...peerRuns.map((t) => t.maxRssKiB)) / 1024;
    const notes: string[] = [];
    notes.push(`Our conversion by phase (medians of the measured runs, from the CLI's progress lines): ${Object.entries(ourPhases).map(([k, v]) => `${k} ${fmt(median(v.slice(1)) / 1000)} s`).join(", ")}.`);
    notes.push(`Peer pipeline by step (medians): ${Object.entries(peerSteps).map(([k, v]) => `${k} ${fmt(median(v.slice(1)) / 1000)} s`).join(", ")}.`);
    if (o.profile) notes.push(...(await profileOurs(base, main, img.ref)));
    return {
      name: "oci-convert",
      setup: [
        `image: ${img.files} files (+${img.hardlinks} hardlinks, ${img.symlinks} symlinks, ${img.whiteouts} whiteouts incl. 1 opaque dir) over 4 gzip layers; ${fmt(img.tarBytes / MiB, 1)} MiB of layer tar, ${fmt(img.blobBytes / MiB, 1)} MiB compressed (text-like and random content)`,
        `ours: \`pve-lxc oci template ${"oci:DIR:bench"} --out X.tar.gz\` (compiled CLI, fresh cache dir each run) — separate process, peak RSS from GNU time`,
        "peer: `skopeo copy` (oci → oci) + `umoci unpack` (as root) + `tar -I 'gzip -6 -n' -cf` — times of the three steps summed",
        "floor: `zcat <4 layers> | gzip -6 -n > /dev/null` (Debian gzip, both ends in parallel)",
        "gzip level 6 on every side",
        `${o.reps} measured repetitions of each, interleaved (ours, peer, floor / floor, peer, ours), after one unmeasured warm-up of ours and peer`,
      ],
      ratios: [
        ratio("ours / peer pipeline (time)", oursMs / 1000, peerMs / 1000, "s", "<= 0.5x", (r) => r <= 0.5),
        ratio("ours / floor (time)", oursMs / 1000, floorMs / 1000, "s", "<= 1.2x", (r) => r <= 1.2),
      ],
      metrics: [
        { name: "our peak RSS (max of runs)", value: `${fmt(rss, 1)} MiB`, target: "<= 128 MiB", met: rss <= 128 },
        { name: "peer peak RSS (largest step)", value: `${fmt(peerRss, 1)} MiB` },
      ],
      notes,
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
  }
}

/**
 * One run of ours with --cpu-prof (main thread and the conversion worker write separate
 * profiles); returns the top self-time functions of each as markdown lines.
 */
async function profileOurs(base: string, main: string, ref: string): Promise<string[]> {
  const profDir = path.join(base, "prof");
  fs.mkdirSync(profDir);
  const out = path.join(base, "prof.tar.gz");
  try {
    await timed(process.execPath, ["--cpu-prof", "--cpu-prof-dir", profDir, main, "oci", "template", ref, "--out", out, "--cache-dir", path.join(base, "prof-cache"), "--quiet"]);
  } catch (e) {
    return [`(profile failed: ${(e as Error).message.split("\n")[0]})`];
  }
  const lines = ["Where our time goes (`node --cpu-prof`, one run; self time per function, top 8 of each thread):", ""];
  for (const f of fs.readdirSync(profDir).filter((x) => x.endsWith(".cpuprofile"))) {
    const prof = JSON.parse(fs.readFileSync(path.join(profDir, f), "utf8")) as {
      nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number } }>;
      samples: number[];
      timeDeltas: number[];
    };
    const byId = new Map(prof.nodes.map((n) => [n.id, n]));
    const self = new Map<string, number>();
    let total = 0;
    prof.samples.forEach((id, i) => {
      const n = byId.get(id)!;
      const dt = prof.timeDeltas[i] ?? 0;
      total += dt;
      const url = n.callFrame.url.replace(/^.*\/(dist|node_modules)\//, "$1/");
      const key = `${n.callFrame.functionName || "(anonymous)"} ${url ? `${url}:${n.callFrame.lineNumber + 1}` : ""}`.trim();
      self.set(key, (self.get(key) ?? 0) + dt);
    });
    if (total < 200_000) continue; // threads that did nearly nothing
    // CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile; thread 0 is the main thread.
    const tid = /\.(\d+)\.\d+\.cpuprofile$/.exec(f)?.[1];
    lines.push(`- ${tid === "0" ? "main thread" : `worker thread ${tid} (the conversion)`} (${fmt(total / 1e6)} s sampled, wall-clock sampling: a descheduled thread counts too):`);
    for (const [k, v] of [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 8)) lines.push(`  - ${fmt((v / total) * 100, 1)} % ${k}`);
  }
  fs.rmSync(out, { force: true });
  return lines;
}

if (require.main === module) {
  const smoke = process.argv.includes("--smoke");
  runOciConvert(smoke ? OCI_SMOKE : OCI_FULL)
    .then((r) => console.log(JSON.stringify(r, null, 2)))
    .catch((e) => {
      console.error(e);
      process.exit(1);
    });
}
