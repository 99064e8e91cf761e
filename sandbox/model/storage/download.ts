/**
 * `download_file_from_url` (BEHAVIOR.md §6.3): fetch http(s) to `<dest>.tmp_dwnl.<pid>`,
 * verify the checksum, rename; the existing-file rules come first.
 */
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import type { TaskContext } from "../../tasks";

export async function fileChecksum(file: string, algorithm: string): Promise<string> {
  const h = crypto.createHash(algorithm);
  await new Promise<void>((resolve, reject) => {
    fs.createReadStream(file).on("data", (c) => h.update(c)).on("end", resolve).on("error", reject);
  });
  return h.digest("hex");
}

function fetchTo(url: string, file: string, verify: boolean, ca: string | undefined, redirects = 5): Promise<void> {
  return new Promise((resolve, reject) => {
    const mod = url.startsWith("https:") ? https : http;
    const req = mod.get(url, { rejectUnauthorized: verify, ...(ca && verify ? { ca } : {}), timeout: 30000 } as https.RequestOptions, (res) => {
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400 && res.headers.location && redirects > 0) {
        res.resume();
        fetchTo(new URL(res.headers.location, url).toString(), file, verify, ca, redirects - 1).then(resolve, reject);
        return;
      }
      if (status !== 200) {
        res.resume();
        reject(new Error(`download failed: ${status} ${res.statusMessage ?? ""}`.trim()));
        return;
      }
      const out = fs.createWriteStream(file);
      res.pipe(out);
      out.on("finish", () => resolve());
      out.on("error", reject);
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error("download failed: timeout")));
    req.on("error", (e) => reject(new Error(`download failed: ${e.message}`)));
  });
}

export async function downloadFile(
  ctx: TaskContext,
  opts: { url: string; dest: string; shownDest: string; checksum?: string; algorithm?: string; verify: boolean; ca?: string },
): Promise<void> {
  const { url, dest, shownDest, checksum, algorithm, verify } = opts;
  if (fs.existsSync(dest)) {
    if (!checksum || !algorithm) throw new Error(`refusing to override existing file '${shownDest}'`);
    const have = await fileChecksum(dest, algorithm);
    if (have === checksum.toLowerCase()) {
      ctx.log("OK, got correct file already, no need to download");
      return;
    }
    throw new Error(`checksum mismatch: got '${have}' != expect '${checksum}', aborting`);
  }
  const tmp = `${dest}.tmp_dwnl.${process.pid}`;
  ctx.log(`downloading ${url} to ${shownDest}`);
  try {
    await fetchTo(url, tmp, verify, opts.ca);
    if (checksum && algorithm) {
      ctx.log(`calculating checksum...`);
      const got = await fileChecksum(tmp, algorithm);
      if (got !== checksum.toLowerCase()) throw new Error(`checksum mismatch: got '${got}' != expect '${checksum}'`);
      ctx.log("checksum verified");
    }
    fs.renameSync(tmp, dest);
    ctx.log(`download of '${url}' to '${shownDest}' finished`);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}
