/**
 * Memory and throughput of a 2 GiB template upload through the Template handler.
 *
 *   npx ts-node -T bench/upload-rss.ts [sizeGiB]
 *
 * The sandbox runs in a child process, so the RSS sampled here is the provider's alone
 * (handler + client + hashing), as it would be inside the Pulumi dynamic provider host.
 * The file is sparse (no disk or page-cache cost to create) and deleted afterwards, as is
 * the uploaded volume. Prints baseline and peak RSS, hashing and upload throughput, and
 * exits non-zero if the peak RSS reaches 100 MiB.
 */
import { fork, type ChildProcess } from "node:child_process";
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
    const child = fork(__filename, ["--sandbox"], { execArgv: ["-r", "ts-node/register/transpile-only"], stdio: ["ignore", "ignore", "inherit", "ipc"] });
    child.once("message", (conn) => resolve({ child, conn: conn as Conn }));
    child.once("exit", (code) => reject(new Error(`sandbox process exited with ${code}`)));
  });
}

async function main(): Promise<void> {
  const sizeGiB = Number(process.argv[2] ?? 2);
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
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);

    const t0 = Date.now();
    const checked = await handler.check!({}, { node: "pve1", path: file, resourceName: "bench" });
    if (checked.failures?.length) throw new Error(JSON.stringify(checked.failures));
    const t1 = Date.now();
    const created = await handler.create(checked.inputs);
    const t2 = Date.now();
    clearInterval(sampler);
    peak = Math.max(peak, process.memoryUsage().rss);

    const outs = created.outs as { volid: string; size: number; checksum: string };
    if (outs.size !== size) throw new Error(`volume size ${outs.size} != ${size}`);
    await handler.delete!(created.id, created.outs);

    const progress = fs.readFileSync(logFile, "utf8").split("\n").filter((l) => l.includes('"percent"')).length;
    const hashSecs = (t1 - t0) / 1000;
    const upSecs = (t2 - t1) / 1000;
    const mib = size / MiB;
    console.log(`file:            ${mib} MiB sparse (${file}), volid ${outs.volid}`);
    console.log(`baseline RSS:    ${(baseline / MiB).toFixed(1)} MiB (node + ts-node + handler modules)`);
    console.log(`peak RSS:        ${(peak / MiB).toFixed(1)} MiB (growth ${((peak - baseline) / MiB).toFixed(1)} MiB), limit ${LIMIT_MIB} MiB`);
    console.log(`check (sha256):  ${hashSecs.toFixed(1)} s, ${(mib / hashSecs).toFixed(0)} MiB/s`);
    console.log(`create (upload + server-side checksum and copy): ${upSecs.toFixed(1)} s, ${(mib / upSecs).toFixed(0)} MiB/s`);
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

if (process.argv.includes("--sandbox")) {
  sandboxChild().catch((e) => {
    console.error(e);
    process.exit(1);
  });
} else {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
