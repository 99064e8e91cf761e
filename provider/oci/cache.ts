/**
 * Content-addressed cache shared by concurrent runs.
 *
 * Layout under the root:
 *   blobs/<alg>/<hex>     registry/archive blobs, named by their verified digest
 *   outputs/<key>.<ext>   converted templates/archives, keyed by manifest digest + format
 *   outputs/<key>.json    the build result recorded beside an output
 *   tmp/                  in-progress writes
 *
 * Every file is written under tmp/ and renamed into place, so a reader never sees a
 * partial file and two runs racing on the same digest both end with a complete file
 * (rename replaces atomically; the contents are identical by construction).
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { randomBytes } from "node:crypto";
import { parseDigest } from "./digest";

export function defaultCacheDir(): string {
  if (process.env.PULUMI_PROXMOX_LXC_OCI_CACHE) return process.env.PULUMI_PROXMOX_LXC_OCI_CACHE;
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache");
  return path.join(base, "pulumi-proxmox-lxc", "oci");
}

export class BlobCache {
  readonly root: string;
  constructor(root?: string) {
    this.root = path.resolve(root ?? defaultCacheDir());
  }

  blobPath(digest: string): string {
    const { algorithm, hex } = parseDigest(digest, "blob digest");
    return path.join(this.root, "blobs", algorithm, hex);
  }

  async hasBlob(digest: string): Promise<boolean> {
    try {
      return (await fs.promises.stat(this.blobPath(digest))).isFile();
    } catch {
      return false;
    }
  }

  outputPath(key: string, ext: string): string {
    return path.join(this.root, "outputs", `${key}${ext}`);
  }

  /** A fresh temp path on the cache's filesystem (so the final rename is atomic). */
  async tempPath(hint: string): Promise<string> {
    const dir = path.join(this.root, "tmp");
    await fs.promises.mkdir(dir, { recursive: true });
    return path.join(dir, `${hint.replace(/[^A-Za-z0-9_.-]/g, "_").slice(0, 60)}.${process.pid}.${randomBytes(6).toString("hex")}`);
  }

  /** Moves a finished temp file into place. */
  async commit(tmp: string, finalPath: string): Promise<void> {
    await fs.promises.mkdir(path.dirname(finalPath), { recursive: true });
    await fs.promises.rename(tmp, finalPath);
  }

  /** Writes small content (manifests, configs, result JSON) atomically. */
  async writeFileAtomic(finalPath: string, data: Buffer | string): Promise<void> {
    const tmp = await this.tempPath(path.basename(finalPath));
    await fs.promises.writeFile(tmp, data);
    await this.commit(tmp, finalPath);
  }

  async putBlobBytes(digest: string, data: Buffer): Promise<string> {
    const p = this.blobPath(digest);
    if (!(await this.hasBlob(digest))) await this.writeFileAtomic(p, data);
    return p;
  }
}

/** Removes a temp file after a failure; a missing file is fine. */
export async function removeQuietly(p: string): Promise<void> {
  await fs.promises.rm(p, { force: true, recursive: true }).catch(() => undefined);
}
