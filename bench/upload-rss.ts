/**
 * Memory and throughput of a 2 GiB template upload through the Template handler.
 *
 *   npx ts-node -T bench/upload-rss.ts [sizeGiB]
 *
 * Three processes: this launcher compiles the bench (tsc, into a temp dir) and runs the
 * measured process with plain node, so the TypeScript compiler that ts-node keeps in
 * memory (~90 MiB) is not counted — the Pulumi dynamic provider host runs compiled JS too.
 * The measured process forks the sandbox into a third process, so the RSS sampled is the
 * provider's alone (handler + client + hashing).
 * The file is sparse (no disk or page-cache cost to create) and deleted afterwards, as is
 * the uploaded volume. Prints baseline and peak RSS, hashing and upload throughput, and
 * exits non-zero if the peak RSS reaches 100 MiB.
 */
import { fork, spawnSync, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

const MiB = 1024 * 1024;
const LIMIT_MIB = 100;

interface Conn {
  endpoint: string;
  apiToken: string;
  tlsFingerprint: string;
}

async function sandboxChild(): Promise<void> {
  const { startSandbox } = await import("../sandbox");
  const sb = await startSandbox({ port: 0, nodes: ["pve1"], taskDurationMs: 0, authFailureDelayMs: 0 });
  process.send!({ endpoint: sb.endpoint, apiToken: sb.apiToken, tlsFingerprint: sb.tlsFingerprint } satisfies Conn);
  process.on("message", async (m) => {
    if (m === "stop") {
      await sb.stop();
      process.exit(0);
    }
  });
}

function startChild(): Promise<{ child: ChildProcess; conn: Conn }> {
  return new Promise((resolve, reject) => {
    const execArgv = __filename.endsWith(".ts") ? ["-r", "ts-node/register/transpile-only"] : [];
    const child = fork(__filename, ["--sandbox"], { execArgv, stdio: ["ignore", "ignore", "inherit", "ipc"] });
    child.once("message", (conn) => resolve({ child, conn: conn as Conn }));
    child.once("exit", (code) => reject(new Error(`sandbox process exited with ${code}`)));
  });
}

async function main(): Promise<void> {
  const sizeGiB = Number(process.argv.filter((a) => !a.startsWith("--"))[2] ?? 2);
  const size = Math.round(sizeGiB * 1024) * MiB;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "upload-rss-"));
  const file = path.join(dir, `bench-${sizeGiB}g.tar.zst`);
  const logFile = path.join(dir, "provider.log");
  const { child, conn } = await startChild();
  try {
    const { configure } = await import("../provider/resources/registry");
    const { resetProviderClient } = await import("../provider/resources/operation");
    const handler = (await import("../provider/resources/template/handler")).default;
    const cfg: Record<string, string> = {
      "proxmox:endpoint": conn.endpoint,
      "proxmox:apiToken": conn.apiToken,
      "proxmox:tlsFingerprint": conn.tlsFingerprint,
      "proxmox:logLevel": "info",
      "proxmox:logFile": logFile,
    };
    configure({ get: (k) => cfg[k] });
    resetProviderClient();

    const fd = fs.openSync(file, "w");
    fs.ftruncateSync(fd, size);
    fs.closeSync(fd);

    (global as { gc?: () => void }).gc?.();
    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    let atPeak = process.memoryUsage();
    const sampler = setInterval(() => {
      const m = process.memoryUsage();
      if (m.rss > peak) {
        peak = m.rss;
        atPeak = m;
      }
    }, 20);

    const t0 = Date.now();
    const checked = await handler.check!({}, { node: "pve1", path: file, resourceName: "bench" });
    if (checked.failures?.length) throw new Error(JSON.stringify(checked.failures));
    const t1 = Date.now();
    const peakCheck = Math.max(peak, process.memoryUsage().rss);
    peak = baseline;
    const created = await handler.create(checked.inputs);
    const t2 = Date.now();
    clearInterval(sampler);
    peak = Math.max(peak, process.memoryUsage().rss);
    const peakCreate = peak;
    peak = Math.max(peakCheck, peakCreate);

    const outs = created.outs as { volid: string; size: number; checksum: string };
    if (outs.size !== size) throw new Error(`volume size ${outs.size} != ${size}`);
    await handler.delete!(created.id, created.outs);

    const progressLines = fs.readFileSync(logFile, "utf8").split("\n").filter((l) => l.includes('"percent"'));
    const progress = progressLines.length;
    const sendRate = progress ? (JSON.parse(progressLines[progress - 1]) as { mibPerSec: number }).mibPerSec : NaN;
    const hashSecs = (t1 - t0) / 1000;
    const upSecs = (t2 - t1) / 1000;
    const mib = size / MiB;
    console.log(`file:            ${mib} MiB sparse (${file}), volid ${outs.volid}`);
    console.log(`baseline RSS:    ${(baseline / MiB).toFixed(1)} MiB (node + handler modules loaded)`);
    console.log(`peak RSS:        ${(peak / MiB).toFixed(1)} MiB (growth ${((peak - baseline) / MiB).toFixed(1)} MiB), limit ${LIMIT_MIB} MiB`);
    const f = (n: number) => `${(n / MiB).toFixed(1)}`;
    console.log(`  at the peak: heapUsed ${f(atPeak.heapUsed)}, heapTotal ${f(atPeak.heapTotal)}, external ${f(atPeak.external)}, arrayBuffers ${f(atPeak.arrayBuffers)} MiB`);
    console.log(`  during check (hashing): ${(peakCheck / MiB).toFixed(1)} MiB; during create (upload): ${(peakCreate / MiB).toFixed(1)} MiB`);
    console.log(`check (sha256):  ${hashSecs.toFixed(1)} s, ${(mib / hashSecs).toFixed(0)} MiB/s`);
    console.log(`create:          ${upSecs.toFixed(1)} s, ${(mib / upSecs).toFixed(0)} MiB/s end to end (send rate ${sendRate} MiB/s; the rest is the sandbox's checksum and copy task)`);
    console.log(`progress lines logged at info: ${progress}; checksum ${outs.checksum}`);
    if (peak / MiB >= LIMIT_MIB) {
      console.error(`FAIL: peak RSS ${(peak / MiB).toFixed(1)} MiB >= ${LIMIT_MIB} MiB`);
      process.exitCode = 1;
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    child.send("stop");
    await new Promise((r) => child.once("exit", r));
  }
}

/** Compile this script and what it imports to plain JS in a temp dir; returns the entry file. */
function compile(outDir: string): string {
  const repo = path.resolve(__dirname, "..");
  const tsconfig = path.join(outDir, "tsconfig.json");
  fs.writeFileSync(
    tsconfig,
    JSON.stringify({
      extends: path.join(repo, "tsconfig.json"),
      compilerOptions: { outDir, rootDir: repo, declaration: false, sourceMap: false, types: ["node"], noEmit: false },
      files: [path.join(repo, "bench", "upload-rss.ts")],
      include: [],
    }),
  );
  const t = Date.now();
  const r = spawnSync(process.execPath, [require.resolve("typescript/bin/tsc"), "-p", tsconfig], { encoding: "utf8" });
  const entry = path.join(outDir, "bench", "upload-rss.js");
  // Type errors elsewhere in a shared tree must not stop the measurement; a missing output must.
  if (!fs.existsSync(entry)) throw new Error(`tsc produced no ${entry}:\n${r.stdout}${r.stderr}`);
  const schemaOut = path.join(outDir, "provider", "proxmox", "schema");
  fs.mkdirSync(schemaOut, { recursive: true });
  for (const f of fs.readdirSync(path.join(repo, "provider", "proxmox", "schema"))) fs.copyFileSync(path.join(repo, "provider", "proxmox", "schema", f), path.join(schemaOut, f));
  console.log(`compiled in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  return entry;
}

function launch(): void {
  const outDir = fs.mkdtempSync(path.join(os.tmpdir(), "upload-rss-build-"));
  try {
    const entry = compile(outDir);
    // BENCH_NODE_FLAGS: extra node flags for the measured process, e.g. "--max-semi-space-size=1"
    // to see how much of the growth is V8's young generation rather than data held.
    const flags = (process.env.BENCH_NODE_FLAGS ?? "").split(/\s+/).filter(Boolean);
    const r = spawnSync(process.execPath, ["--expose-gc", ...flags, entry, "--measure", ...process.argv.slice(2)], {
      stdio: "inherit",
      env: { ...process.env, NODE_PATH: path.resolve(__dirname, "..", "node_modules") },
    });
    process.exitCode = r.status ?? 1;
  } finally {
    fs.rmSync(outDir, { recursive: true, force: true });
  }
}

const die = (e: unknown) => {
  console.error(e);
  process.exit(1);
};
if (process.argv.includes("--sandbox")) sandboxChild().catch(die);
else if (process.argv.includes("--measure")) main().catch(die);
else launch();
