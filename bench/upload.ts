/**
 * upload: a template file uploaded to the sandbox (its own process, state in /dev/shm when
 * there is room) by our client vs `curl -F` to the same endpoint with the same multipart
 * fields (content, checksum-algorithm, checksum, then the file part `filename`), the same
 * API-token header, and the sandbox's certificate pinned (`-k --pinnedpubkey`, as our
 * client pins the fingerprint).
 *
 * Both are timed from start to the server's answer (the UPID); the imgcopy task (the
 * sandbox's checksum and copy) runs untimed between runs, and the volume is deleted.
 * The file is sparse (reads cost no disk), its sha256 computed once and given to both.
 * Our client runs compiled in its own process (bench/upload-client.ts) so its peak RSS
 * (VmHWM) is the client's alone; curl's is from GNU time. bench/upload-rss.ts measures
 * the full Template handler path (hashing pass included) for the same 2 GiB.
 */
import { X509Certificate, createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { PveClient } from "../provider/proxmox/client";
import { sha256File } from "../provider/proxmox/upload";
import { BenchResult, MiB, compiledBench, fastTmpBase, fmt, interleave, log, median, ratio, startSandboxProcess, timed, tmpDir } from "./lib";

export interface UploadBenchOptions {
  sizeBytes: number;
  reps: number;
}

export const UPLOAD_FULL: UploadBenchOptions = { sizeBytes: 2 * 1024 * MiB, reps: 5 };
export const UPLOAD_SMOKE: UploadBenchOptions = { sizeBytes: 16 * MiB, reps: 1 };

interface Run {
  ms: number;
  rssKiB: number;
}

export async function runUpload(o: UploadBenchOptions): Promise<BenchResult> {
  const started = Date.now();
  // The sandbox holds the upload's temp file and then the volume: up to 2x the size.
  const sb = await startSandboxProcess({ taskDurationMs: 0, stateBase: fastTmpBase(o.sizeBytes * 2.5) });
  const dir = tmpDir("bench-upload-", os.tmpdir());
  const client = PveClient.connect({ endpoint: sb.conn.endpoint, apiToken: sb.conn.apiToken, tlsFingerprint: sb.conn.tlsFingerprint });
  try {
    const file = path.join(dir, "bench.tar.zst");
    const fd = fs.openSync(file, "w");
    fs.ftruncateSync(fd, o.sizeBytes);
    fs.closeSync(fd);
    const sha = await sha256File(file);
    const node = sb.conn.nodes[0];
    const spki = new X509Certificate(sb.conn.caCertPem).publicKey.export({ type: "spki", format: "der" });
    const pin = `sha256//${createHash("sha256").update(spki).digest("base64")}`;
    const url = `${sb.conn.endpoint}/api2/json/nodes/${node}/storage/local/upload`;
    const mib = o.sizeBytes / MiB;

    const finish = async (upid: string | undefined, volid: string) => {
      if (upid) await client.tasks.wait(upid);
      await client.storage.deleteVolumeAndWait(node, volid);
    };
    let n = 0;
    const ours = async (): Promise<Run> => {
      const name = `ours-${++n}.tar.zst`;
      const t = await timed(process.execPath, [compiledBench("upload-client"), sb.connectionFile, file, sha, name]);
      const r = JSON.parse(t.stdout.trim().split("\n").pop()!) as { ms: number; vmHwmKiB: number; volid: string; upid: string };
      await finish(r.upid, r.volid);
      log(`  ours ${fmt(r.ms / 1000)} s (${fmt(mib / (r.ms / 1000), 0)} MiB/s), peak RSS ${fmt(r.vmHwmKiB / 1024, 1)} MiB`);
      return { ms: r.ms, rssKiB: r.vmHwmKiB };
    };
    const curl = async (): Promise<Run> => {
      const name = `curl-${++n}.tar.zst`;
      const t = await timed("curl", [
        "-sS", "--fail-with-body", "-k", "--pinnedpubkey", pin,
        "-H", `Authorization: PVEAPIToken=${sb.conn.apiToken}`,
        "-F", "content=vztmpl", "-F", "checksum-algorithm=sha256", "-F", `checksum=${sha}`,
        "-F", `filename=@${file};filename=${name}`,
        url,
      ]);
      const upid = (JSON.parse(t.stdout) as { data: string }).data;
      await finish(upid, `local:vztmpl/${name}`);
      log(`  curl ${fmt(t.ms / 1000)} s (${fmt(mib / (t.ms / 1000), 0)} MiB/s), peak RSS ${fmt(t.maxRssKiB / 1024, 1)} MiB`);
      return { ms: t.ms, rssKiB: t.maxRssKiB };
    };
    log(`upload: ${fmt(mib, 0)} MiB, sandbox state in ${sb.stateDir}`);
    await ours(); // warm-up (page cache of node's modules, TLS session), not counted
    await curl();
    const runs = await interleave(o.reps, ours, curl);
    const oursMs = median(runs.a.map((r) => r.ms));
    const curlMs = median(runs.b.map((r) => r.ms));
    const oursRate = mib / (oursMs / 1000);
    const curlRate = mib / (curlMs / 1000);
    const rss = Math.max(...runs.a.map((r) => r.rssKiB)) / 1024;
    const curlRss = Math.max(...runs.b.map((r) => r.rssKiB)) / 1024;
    return {
      name: "upload",
      setup: [
        `${fmt(mib, 0)} MiB sparse template file, uploaded to the sandbox (separate process, task duration 0, state in ${sb.stateDir.startsWith("/dev/shm") ? "/dev/shm" : "a temp dir"})`,
        "ours: `uploadFile` (provider/proxmox/upload.ts, checksum given) in its own compiled process; curl: `curl -F` with the same fields, token header and pinned key",
        "timed from start to the server's UPID answer (imgcopy task waited for and the volume deleted between runs, untimed)",
        `${o.reps} measured repetitions of each, interleaved, after one warm-up of each`,
      ],
      ratios: [ratio("throughput ours / curl", oursRate, curlRate, "MiB/s", ">= 0.9x", (r) => r >= 0.9)],
      metrics: [
        { name: "our client peak RSS (VmHWM, max of runs)", value: `${fmt(rss, 1)} MiB`, target: "<= 100 MiB", met: rss <= 100 },
        { name: "curl peak RSS", value: `${fmt(curlRss, 1)} MiB` },
        { name: "median times ours / curl", value: `${fmt(oursMs / 1000)} s / ${fmt(curlMs / 1000)} s` },
      ],
      notes: [],
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    client.close();
    await sb.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  runUpload(process.argv.includes("--smoke") ? UPLOAD_SMOKE : UPLOAD_FULL)
    .then((r) => console.log(JSON.stringify(r, null, 2)))
    .catch((e) => {
      console.error(e);
      process.exit(1);
    });
}
