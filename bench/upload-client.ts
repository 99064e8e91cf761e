/**
 * The measured process of the upload bench (run compiled: node dist/bench/upload-client.js):
 * one `uploadFile` through our client to the sandbox, timed from the call to the server's
 * answer (the UPID; the imgcopy task is not waited for, as curl does not wait either).
 * Prints one JSON line: {ms, vmHwmKiB, baselineKiB, volid, upid}.
 *
 *   node dist/bench/upload-client.js CONNECTION_FILE FILE SHA256HEX FILENAME
 */
import * as fs from "node:fs";
import { PveClient } from "../provider/proxmox/client";
import { uploadFile } from "../provider/proxmox/upload";
import { readConnectionFile } from "../sandbox/remote";

function hwm(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync("/proc/self/status", "utf8"));
  return m ? Number(m[1]) : NaN;
}

async function main(): Promise<void> {
  const [connFile, file, sha, filename] = process.argv.slice(2);
  const conn = readConnectionFile(connFile);
  const client = PveClient.connect({ endpoint: conn.endpoint, apiToken: conn.apiToken, tlsFingerprint: conn.tlsFingerprint });
  const baselineKiB = hwm();
  const t0 = process.hrtime.bigint();
  const r = await uploadFile(client, {
    node: conn.nodes[0],
    storage: "local",
    content: "vztmpl",
    filePath: file,
    filename,
    checksum: { algorithm: "sha256", value: sha },
    wait: false,
  });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  console.log(JSON.stringify({ ms, vmHwmKiB: hwm(), baselineKiB, volid: r.volid, upid: r.upid }));
  client.close();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
