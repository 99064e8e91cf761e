/**
 * Layer decompression and template compression.
 *
 * - gzip decompression: node's zlib. gzip compression: block-parallel gzip members on
 *   zlib's thread pool (`pgzip.ts`), so it uses every core.
 * - zstd decompression: node's zlib when it has zstd (Node >= 22.15), else the pure-JS
 *   `fzstd` (Node 20 has no zstd; fzstd is small, maintained, dependency-free and streams).
 * - zstd compression: node's zlib when available, else the `zstd` binary (multi-threaded,
 *   fast, present on every PVE host, which itself writes .tar.zst templates with it, and
 *   installed by .ci/run). The npm candidates were measured (level 3, 100 MB of
 *   node_modules tar, same machine and minute): `zstd -3 -T1` 0.38 s of CPU, the wasm
 *   builds `@bokuweb/zstd-wasm` 1.37 s and `zstd-codec` 1.94 s, single-threaded; the
 *   native bindings (`zstd-napi`, `@mongodb-js/zstd`) need a prebuilt download or a
 *   node-gyp build at install, which this project's installs cannot rely on.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as zlib from "node:zlib";
import { ChildProcessByStdio, spawn } from "node:child_process";
import { Duplex, PassThrough, Readable, Transform, TransformCallback, Writable } from "node:stream";
import { Decompress as FzstdDecompress } from "fzstd";
import { OciError } from "./errors";
import { ParallelGzip } from "./pgzip";

export type DetectedCompression = "none" | "gzip" | "zstd";

/** Identifies a layer's compression from its first bytes (media types are not always honest). */
export function sniffCompression(head: Buffer): DetectedCompression | "xz" | "bzip2" {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return "gzip";
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return "zstd";
  if (head.length >= 6 && head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return "xz";
  if (head.length >= 3 && head.toString("latin1", 0, 3) === "BZh") return "bzip2";
  return "none";
}

type ZlibWithZstd = typeof zlib & {
  createZstdDecompress?: () => Transform;
  createZstdCompress?: (opts?: unknown) => Transform;
  constants: typeof zlib.constants & { ZSTD_c_compressionLevel?: number; ZSTD_c_nbWorkers?: number };
};
const z = zlib as ZlibWithZstd;

class FzstdTransform extends Transform {
  private readonly d: FzstdDecompress;
  constructor() {
    super();
    this.d = new FzstdDecompress((chunk: Uint8Array) => {
      this.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    });
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.d.push(chunk);
      cb();
    } catch (err) {
      cb(new OciError("HOSTILE_LAYER", `zstd data is corrupt: ${(err as Error).message}`));
    }
  }
  override _flush(cb: TransformCallback): void {
    try {
      this.d.push(new Uint8Array(0), true);
      cb();
    } catch (err) {
      cb(new OciError("HOSTILE_LAYER", `zstd data is corrupt or truncated: ${(err as Error).message}`));
    }
  }
}

export function createDecompressor(c: DetectedCompression): Transform {
  switch (c) {
    case "gzip":
      // 64 KiB output chunks instead of 16 KiB: far less per-chunk overhead (measured on
      // a 300 MB image: 22.5 s → ~15 s) without raising peak RSS noticeably. Up to 512 KiB
      // queued (zlib passes stream options on to its Transform; the typings omit them):
      // decompression, on zlib's thread pool, runs ahead of the tar parser instead of
      // waiting for it after each chunk.
      return zlib.createGunzip({ chunkSize: 1 << 16, readableHighWaterMark: 1 << 19 } as zlib.ZlibOptions);
    case "zstd":
      return z.createZstdDecompress ? z.createZstdDecompress() : new FzstdTransform();
    case "none":
      return new PassThrough();
  }
}

export type OutputCompression = "gzip" | "zstd";

/**
 * A compressor for template output as a stream transform, or null when the `zstd`
 * program writes the file itself (`ZstdFileWriter`: Node without zstd in zlib).
 */
export function createCompressor(c: OutputCompression): Duplex | null {
  if (c === "gzip") return new ParallelGzip({ level: 6 });
  if (z.createZstdCompress) {
    return z.createZstdCompress({ params: { [z.constants.ZSTD_c_compressionLevel!]: 3 } });
  }
  return null;
}

/** Whether this machine can write zstd: Node's zlib has it, or the `zstd` program is on PATH. */
export function canWriteZstd(): boolean {
  if (z.createZstdCompress) return true;
  const exts = process.platform === "win32" ? [".exe", ""] : [""];
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    for (const ext of exts) {
      try {
        fs.accessSync(path.join(dir || ".", `zstd${ext}`), fs.constants.X_OK);
        return true;
      } catch {
        // not here
      }
    }
  }
  return false;
}

/**
 * `zstd -3 -T0 -o FILE` as a Writable: the tar goes to zstd's stdin, zstd writes the file
 * itself. Finishing waits for zstd to exit 0, so a failing zstd fails the conversion
 * instead of leaving a truncated file; a missing binary gives an error saying what to
 * install. zstd writes the file rather than piping it back: its output would otherwise
 * come back as a fresh 64 KiB buffer per pipe read, dead as soon as written, piling up
 * (measured: +10-15 MiB peak RSS) until V8 collects them.
 */
export class ZstdFileWriter extends Writable {
  private readonly child: ChildProcessByStdio<Writable, null, Readable>;
  private stderr = "";
  private exited?: Promise<number | null>;

  constructor(file: string) {
    super({ highWaterMark: 1 << 18 });
    this.child = spawn("zstd", ["-q", "-3", "-T0", "-o", file], { stdio: ["pipe", "ignore", "pipe"] });
    this.child.stderr.on("data", (d: Buffer) => {
      if (this.stderr.length < 4096) this.stderr += d.toString();
    });
    this.exited = new Promise((resolve) => this.child.on("close", (code) => resolve(code)));
    this.child.on("error", (err: NodeJS.ErrnoException) => {
      this.destroy(
        err.code === "ENOENT"
          ? new OciError("MISSING_TOOL", "zstd compression needs the 'zstd' program on this Node version: install it (apt-get install zstd) or use compression 'gzip'")
          : err,
      );
    });
    // EPIPE on stdin after zstd died is reported through the exit code instead.
    this.child.stdin.on("error", () => undefined);
  }

  /**
   * Done (cb) only when the pipe has taken the whole chunk, not merely queued it: the
   * caller (BlockWriter) reuses the chunk's buffer after cb.
   */
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.child.stdin.write(chunk, (err) => cb(err));
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.child.stdin.end();
    void this.exited!.then((code) => cb(code === 0 ? null : new Error(`zstd exited with code ${code}: ${this.stderr.trim()}`)));
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (this.child.exitCode === null) this.child.kill("SIGKILL");
    cb(err);
  }
}
