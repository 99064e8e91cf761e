/**
 * oci-convert: a multi-layer image (bench/image.ts) → a PVE rootfs template, .tar.gz and
 * .tar.zst.
 *
 * - ours:  `node dist/provider/cli/main.js oci template oci:DIR:bench --out X.tar.gz`
 *          (and `--out X.tar.zst`), fresh cache dir every run, so nothing is reused, in
 *          its own process under GNU time (wall time, CPU time, peak RSS incl. threads);
 * - peer:  `skopeo copy oci:DIR:bench oci:COPY:bench` + `umoci unpack --image COPY:bench B`
 *          + `tar -C B/rootfs -I 'gzip -6 -n' -cf X.tar.gz .` (Debian's tools, as root);
 * - floors: `zcat L1 L2 L3 L4 | pigz -p 2 -6 -n > /dev/null` and
 *          `zcat L1 L2 L3 L4 | zstd -T2 -3 > /dev/null` — decompress every layer and
 *          compress the stream once on both cores: the least work any converter must do
 *          (it compresses all layer bytes, deleted and overwritten ones too, so it is a
 *          generous floor).
 * gzip level 6 everywhere (zlib's default, which ours uses; gzip's and pigz's default);
 * zstd level 3 (ours: `zstd -3 -T0`).
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { makeBenchImage } from "./image";
import { BenchResult, MiB, Timed, cliMain, fastTmpBase, fmt, log, median, profileSelfTimes, ratio, timed, tmpDir } from "./lib";

export interface OciConvertOptions {
  files: number;
  bytes: number;
  reps: number;
  /** Also run ours once with --cpu-prof and report the top self-time functions. */
  profile?: boolean;
}

export const OCI_FULL: OciConvertOptions = { files: 20_000, bytes: 300 * 1000 * 1000, reps: 3, profile: true };
export const OCI_SMOKE: OciConvertOptions = { files: 300, bytes: 3 * 1000 * 1000, reps: 1 };

type Run = () => Promise<Timed>;
const loadavg = () => os.loadavg().map((l) => l.toFixed(2)).join(" ");
const medianOf = (runs: Timed[], k: "ms" | "cpuS") => median(runs.map((t) => t[k]));

export async function runOciConvert(o: OciConvertOptions): Promise<BenchResult> {
  const started = Date.now();
  const loadStart = loadavg();
  const base = tmpDir("bench-oci-", fastTmpBase(o.bytes * 4));
  try {
    log(`oci-convert: making the image (${o.files} files, ${fmt(o.bytes / MiB, 0)} MiB) in ${base}`);
    const img = makeBenchImage(path.join(base, "image"), { files: o.files, bytes: o.bytes });
    const main = cliMain();
    let run = 0;
    const phases: Record<"gz" | "zst", Record<string, number[]>> = { gz: {}, zst: {} };
    const ours = (ext: "gz" | "zst"): Run => async () => {
      const n = ++run;
      const cache = path.join(base, `cache-${n}`);
      const out = path.join(base, `ours-${n}.tar.${ext}`);
      // Progress lines (one per phase when stderr is not a TTY) give the phase boundaries.
      const marks: Record<string, number> = {};
      const t = await timed(process.execPath, [main, "oci", "template", img.ref, "--out", out, "--cache-dir", cache, "--json"], {
        onStderrLine: (line, at) => {
          const phase = /^(resolving|download|scan|write|done)/.exec(line)?.[1];
          if (phase && marks[phase] === undefined) marks[phase] = at;
        },
      });
      const ph = { "start+resolve": marks.scan, "scan (pass 1)": marks.write - marks.scan, "write (pass 2)": marks.done - marks.write, "deliver+exit": t.ms - marks.done };
      for (const [k, v] of Object.entries(ph)) (phases[ext][k] ??= []).push(v);
      const size = fs.statSync(out).size;
      fs.rmSync(cache, { recursive: true, force: true });
      fs.rmSync(out, { force: true });
      log(`  ours .tar.${ext} ${fmt(t.ms / 1000)} s (CPU ${fmt(t.cpuS)} s), peak RSS ${fmt(t.maxRssKiB / 1024, 1)} MiB, output ${fmt(size / MiB, 1)} MiB`);
      return t;
    };
    const peerSteps: Record<string, number[]> = { "skopeo copy": [], "umoci unpack": [], "tar czf": [] };
    const peer: Run = async () => {
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
      const t = { ms: a.ms + b.ms + c.ms, cpuS: a.cpuS + b.cpuS + c.cpuS, maxRssKiB: Math.max(a.maxRssKiB, b.maxRssKiB, c.maxRssKiB), stdout: "", stderr: "" };
      log(`  peer  ${fmt(t.ms / 1000)} s (skopeo ${fmt(a.ms / 1000)}, umoci ${fmt(b.ms / 1000)}, tar ${fmt(c.ms / 1000)}), output ${fmt(size / MiB, 1)} MiB`);
      return t;
    };
    const floor = (compressor: string, name: string): Run => async () => {
      const t = await timed("sh", ["-c", `zcat "$@" | ${compressor} > /dev/null`, "sh", ...img.layers.map((l) => l.path)]);
      log(`  floor ${name} ${fmt(t.ms / 1000)} s (CPU ${fmt(t.cpuS)} s)`);
      return t;
    };
    const kinds = { oursGz: ours("gz"), oursZst: ours("zst"), peer, pigz: floor("pigz -p 2 -6 -n", "pigz"), zstd: floor("zstd -q -T2 -3", "zstd") };
    type Kind = keyof typeof kinds;
    // A warm-up of ours and the peer (page cache, binaries), not counted.
    await kinds.oursGz();
    await kinds.oursZst();
    await kinds.peer();
    for (const k of Object.keys(phases) as Array<"gz" | "zst">) for (const v of Object.values(phases[k])) v.length = 0;
    const runs: Record<Kind, Timed[]> = { oursGz: [], oursZst: [], peer: [], pigz: [], zstd: [] };
    const order = Object.keys(kinds) as Kind[];
    for (let i = 0; i < o.reps; i++) {
      // Interleaved, every other repetition in reverse, to spread the machine's drift.
      for (const k of i % 2 === 0 ? order : [...order].reverse()) runs[k].push(await kinds[k]());
    }
    const s = (k: Kind) => medianOf(runs[k], "ms") / 1000;
    const rss = Math.max(...[...runs.oursGz, ...runs.oursZst].map((t) => t.maxRssKiB)) / 1024;
    const peerRss = Math.max(...runs.peer.map((t) => t.maxRssKiB)) / 1024;
    const loadEnd = loadavg();
    const cpu = (k: Kind) => `${fmt(medianOf(runs[k], "cpuS"))} s CPU in ${fmt(s(k))} s`;
    const notes: string[] = [];
    notes.push(`Load average (1, 5, 15 min) at the start of this bench: ${loadStart}; at its end: ${loadEnd}.`, "");
    notes.push(`CPU time (user + system, medians) against wall time: ours .tar.gz ${cpu("oursGz")}, pigz floor ${cpu("pigz")}; ours .tar.zst ${cpu("oursZst")}, zstd floor ${cpu("zstd")}; peer ${cpu("peer")}.`, "");
    for (const ext of ["gz", "zst"] as const) {
      notes.push(`Ours .tar.${ext} by phase (medians of the measured runs, from the CLI's progress lines): ${Object.entries(phases[ext]).map(([k, v]) => `${k} ${fmt(median(v) / 1000)} s`).join(", ")}.`, "");
    }
    notes.push(`Peer pipeline by step (medians): ${Object.entries(peerSteps).map(([k, v]) => `${k} ${fmt(median(v.slice(1)) / 1000)} s`).join(", ")}.`, "");
    if (o.profile) notes.push(...(await profileOurs(base, main, img.ref)));
    return {
      name: "oci-convert",
      setup: [
        `image: ${img.files} files (+${img.hardlinks} hardlinks, ${img.symlinks} symlinks, ${img.whiteouts} whiteouts incl. 1 opaque dir) over 4 gzip layers; ${fmt(img.tarBytes / MiB, 1)} MiB of layer tar, ${fmt(img.blobBytes / MiB, 1)} MiB compressed (text-like and random content)`,
        `ours: \`pve-lxc oci template ${"oci:DIR:bench"} --out X.tar.gz\` and \`--out X.tar.zst\` (compiled CLI, fresh cache dir each run) — separate process, wall and CPU time and peak RSS from GNU time`,
        "peer: `skopeo copy` (oci → oci) + `umoci unpack` (as root) + `tar -I 'gzip -6 -n' -cf` — times of the three steps summed",
        "floors: `zcat <4 layers> | pigz -p 2 -6 -n > /dev/null` and `zcat <4 layers> | zstd -T2 -3 > /dev/null` (Debian's tools, every process in parallel)",
        "gzip level 6 and zstd level 3 on every side",
        `${o.reps} measured repetitions of each, interleaved (ours gz, ours zst, peer, pigz, zstd / the reverse), after one unmeasured warm-up of each of ours and the peer`,
      ],
      ratios: [
        ratio("ours .tar.gz / pigz -p 2 -6 floor (time)", s("oursGz"), s("pigz"), "s", "<= 1.1x", (r) => r <= 1.1),
        ratio("ours .tar.gz / skopeo + umoci + tar gzip -6 (time)", s("oursGz"), s("peer"), "s", "<= 0.4x", (r) => r <= 0.4),
        ratio("ours .tar.zst / zstd -T2 -3 floor (time)", s("oursZst"), s("zstd"), "s", "<= 1.1x", (r) => r <= 1.1),
      ],
      metrics: [
        { name: "our peak RSS (max of all runs, gz and zst)", value: `${fmt(rss, 1)} MiB`, target: "<= 128 MiB", met: rss <= 128 },
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
    const { total, top } = profileSelfTimes(path.join(profDir, f));
    if (total < 200_000) continue; // threads that did nearly nothing
    // CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile; thread 0 is the main thread.
    const tid = /\.(\d+)\.\d+\.cpuprofile$/.exec(f)?.[1];
    lines.push(`- ${tid === "0" ? "main thread" : `worker thread ${tid} (the conversion)`} (${fmt(total / 1e6)} s sampled, wall-clock sampling: a descheduled thread counts too):`);
    for (const [k, v] of top(8)) lines.push(`  - ${fmt((v / total) * 100, 1)} % ${k}`);
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
