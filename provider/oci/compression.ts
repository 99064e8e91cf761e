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
import { ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { Duplex, PassThrough, Transform, TransformCallback } from "node:stream";
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
      return zlib.createGunzip({ chunkSize: 1 << 18, readableHighWaterMark: 1 << 19 } as zlib.ZlibOptions);
    case "zstd":
      return z.createZstdDecompress ? z.createZstdDecompress() : new FzstdTransform();
    case "none":
      return new PassThrough();
  }
}

export type OutputCompression = "gzip" | "zstd";

/** A compressor for template output. The zstd binary is only needed on Node without zstd. */
export function createCompressor(c: OutputCompression): Duplex {
  if (c === "gzip") return new ParallelGzip({ level: 6 });
  if (z.createZstdCompress) {
    return z.createZstdCompress({ params: { [z.constants.ZSTD_c_compressionLevel!]: 3 } });
  }
  return zstdProcess();
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
 * `zstd -3 -T0 -c` as a Duplex: stdin in, stdout out. The readable side ends only after
 * the process exited 0, so a failing zstd fails the pipeline instead of leaving a
 * truncated file; a missing binary gives an error saying what to install.
 */
class ZstdProcess extends Duplex {
  private readonly child: ChildProcessWithoutNullStreams;
  private stderr = "";
  private stdoutEnded = false;
  private exitCode: number | null | undefined;

  constructor() {
    super();
    this.child = spawn("zstd", ["-q", "-3", "-T0", "-c"], { stdio: ["pipe", "pipe", "pipe"] });
    this.child.stderr.on("data", (d: Buffer) => {
      if (this.stderr.length < 4096) this.stderr += d.toString();
    });
    this.child.stdout.on("data", (d: Buffer) => {
      if (!this.push(d)) this.child.stdout.pause();
    });
    this.child.stdout.on("end", () => {
      this.stdoutEnded = true;
      this.maybeEnd();
    });
    this.child.on("error", (err: NodeJS.ErrnoException) => {
      this.destroy(
        err.code === "ENOENT"
          ? new OciError("MISSING_TOOL", "zstd compression needs the 'zstd' program on this Node version: install it (apt-get install zstd) or use compression 'gzip'")
          : err,
      );
    });
    this.child.on("close", (code) => {
      this.exitCode = code;
      this.maybeEnd();
    });
    // EPIPE on stdin after zstd died is reported through the exit code instead.
    this.child.stdin.on("error", () => undefined);
  }

  private maybeEnd(): void {
    if (!this.stdoutEnded || this.exitCode === undefined) return;
    if (this.exitCode === 0) this.push(null);
    else this.destroy(new Error(`zstd exited with code ${this.exitCode}: ${this.stderr.trim()}`));
  }

  override _read(): void {
    this.child.stdout.resume();
  }

  /**
   * Done (cb) only when the pipe has taken the whole chunk, not merely queued it: the
   * caller (BlockWriter) reuses the chunk's buffer after cb. It writes 1 MiB blocks, so
   * this is one round trip per MiB while zstd's threads compress the previous ones.
   */
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.child.stdin.write(chunk, (err) => cb(err));
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.child.stdin.end(() => cb());
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (this.exitCode === undefined) this.child.kill("SIGKILL");
    cb(err);
  }
}

function zstdProcess(): Duplex {
  return new ZstdProcess();
}
