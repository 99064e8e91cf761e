/**
 * Local template files: readability checks and content digests for change detection.
 *
 * Why hash at all: a `path` template must be replaced when the file's content changes,
 * even if its name stays the same. Hashing streams the file (1 MiB chunks, constant
 * memory) and runs at roughly disk speed, which is cheap next to an upload of the same
 * bytes; and it runs at most once per (file, size, mtime, inode) per process, because
 * check(), diff() and create() of one `pulumi up` run in the same provider process and
 * share this cache.
 */
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";

export type DigestAlgorithm = "md5" | "sha1" | "sha224" | "sha256" | "sha384" | "sha512";

export interface FileDigest {
  size: number;
  sha256: string;
  /** The digest in another algorithm, when asked for (e.g. the user's checksumAlgorithm). */
  other?: { algorithm: DigestAlgorithm; value: string };
}

/** Why `file` cannot be uploaded, or undefined if it is a readable regular file. */
export async function fileProblem(file: string): Promise<string | undefined> {
  let st: fs.Stats;
  try {
    st = await fs.promises.stat(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return `'${file}' does not exist (resolved from ${process.cwd()}); give the path of the template file to upload`;
    if (code === "EACCES") return `'${file}' cannot be accessed (permission denied on a parent directory)`;
    return `'${file}' cannot be read: ${(e as Error).message}`;
  }
  if (st.isDirectory()) return `'${file}' is a directory; give the path of a template file (e.g. ${path.join(file, "debian-12.tar.zst")})`;
  if (!st.isFile()) return `'${file}' is not a regular file (a device, socket or FIFO cannot be uploaded)`;
  try {
    await fs.promises.access(file, fs.constants.R_OK);
  } catch {
    return `'${file}' is not readable by the user running Pulumi (uid ${process.getuid?.() ?? "?"}); fix its permissions`;
  }
  return undefined;
}

const cache = new Map<string, Promise<FileDigest>>();

/** For tests: forget cached digests. */
export function clearDigestCache(): void {
  cache.clear();
}

let computations = 0;

/** How many digests were computed (not served from the cache); for tests. */
export function digestComputations(): number {
  return computations;
}

async function compute(file: string, size: number, other?: DigestAlgorithm): Promise<FileDigest> {
  computations++;
  const h = crypto.createHash("sha256");
  const h2 = other && other !== "sha256" ? crypto.createHash(other) : undefined;
  // One reused buffer: a read stream allocates a new chunk per read, and for a multi-GiB
  // file that garbage (external memory, collected late) showed up as tens of MiB of RSS.
  const buf = Buffer.allocUnsafe(256 * 1024);
  const fh = await fs.promises.open(file, "r");
  try {
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      const chunk = buf.subarray(0, bytesRead);
      h.update(chunk);
      h2?.update(chunk);
    }
  } finally {
    await fh.close();
  }
  const sha256 = h.digest("hex");
  const d: FileDigest = { size, sha256 };
  if (other) d.other = { algorithm: other, value: h2 ? h2.digest("hex") : sha256 };
  return d;
}

/**
 * The file's sha256 (and optionally another digest), cached by (real path, size, mtime,
 * inode): a rewritten file gets a new mtime or inode, so a stale digest is never served.
 */
export async function fileDigest(file: string, other?: DigestAlgorithm): Promise<FileDigest> {
  const real = await fs.promises.realpath(file);
  const st = await fs.promises.stat(real);
  const base = `${real}\0${st.size}\0${st.mtimeMs}\0${st.ino}`;
  const extra = other && other !== "sha256" ? other : undefined;
  const key = `${base}\0${extra ?? ""}`;
  let p = cache.get(key);
  if (!p) {
    p = compute(real, st.size, extra);
    cache.set(key, p);
    // The same pass gave the sha256: later plain lookups need not read the file again.
    if (extra && !cache.has(`${base}\0`)) {
      const plain = p.then((d) => ({ size: d.size, sha256: d.sha256 }));
      plain.catch(() => undefined); // its failure is reported through `p`
      cache.set(`${base}\0`, plain);
    }
    // A failed read must not stay cached.
    p.catch(() => {
      cache.delete(key);
      cache.delete(`${base}\0`);
    });
  }
  const d = await p;
  return other && !d.other ? { ...d, other: { algorithm: other, value: d.sha256 } } : d;
}
