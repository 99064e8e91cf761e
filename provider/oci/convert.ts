/**
 * Runs the CPU- and allocation-heavy conversions (flatten + compress, flatten + extract)
 * in a worker thread with a small young generation.
 *
 * Why a worker: every decompressed/compressed chunk is a fresh Buffer whose native memory
 * is only released when V8 collects its wrapper. With Node's default young generation
 * (up to 48 MiB) tens of MiB of dead chunks pile up between scavenges, pushing peak RSS
 * of a 300 MB image to ~125 MiB; a 2 MiB young generation keeps it at ~100-110 MiB
 * (the budget is 128 MiB) and is also faster. A worker is the only way to set that limit
 * from inside an already-running process (the Pulumi provider). It also keeps the
 * provider's main thread free to answer the engine while an image converts. The old
 * generation gets a smaller growth factor while conversions run (see
 * CONVERT_HEAP_GROWING_PERCENT below).
 */
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import * as v8 from "node:v8";
import * as fs from "node:fs";
import { createHash } from "node:crypto";
import { PassThrough, Transform, TransformCallback, Writable } from "node:stream";
import { finished, pipeline } from "node:stream/promises";
import { OutputCompression, ZstdFileWriter, createCompressor } from "./compression";
import { BlockWriter } from "./blocks";
import { OciError, OciErrorCode } from "./errors";
import { extractRootfs } from "./extract";
import { Flattener } from "./flatten";
import { LayerFile } from "./layer";

export interface ConvertJob {
  kind: "template" | "extract";
  layers: LayerFile[];
  /** template: the output file to create; extract: the rootfs directory. */
  target: string;
  compression?: OutputCompression;
  maxEntries?: number;
  maxBytes?: number;
  devices?: "drop" | "keep" | "error";
}

export interface ConvertResult {
  size: number;
  sha256: string;
  entries: number;
  warnings: string[];
}

export interface ConvertCallbacks {
  onProgress?: (phase: "scan" | "write", done: number, total: number) => void;
  onWarning?: (message: string) => void;
}

/** Counts and hashes what passes through (output size and sha256 in the same pass). */
export class HashTap extends Transform {
  readonly hash = createHash("sha256");
  size = 0;
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    cb(null, chunk);
  }
}

/** The conversion itself, on the current thread. */
export async function convertHere(job: ConvertJob, cb: ConvertCallbacks = {}): Promise<ConvertResult> {
  const flattener = new Flattener(job.layers, {
    maxEntries: job.maxEntries,
    maxBytes: job.maxBytes,
    devices: job.devices,
    onProgress: cb.onProgress,
    warn: cb.onWarning,
    // Layer spools go next to the output: the same file system, which has to take the
    // output anyway (a template's temp file in the cache; the bundle directory).
    spoolPrefix: job.kind === "extract" ? `${job.target}.spool` : job.target,
  });
  if (job.kind === "extract") {
    const ex = await extractRootfs(flattener.tar(), job.target, cb.onWarning);
    return { size: flattener.stats.bytesWritten, sha256: "", entries: ex.entries, warnings: [...flattener.stats.warnings, ...ex.warnings] };
  }
  const { sink, written } = templateSink(job.target, job.compression);
  // Pass 2 pushes into 256 KiB blocks, reused once the compressor is done with them.
  const blocks = new BlockWriter(sink);
  const flattened = flattener.writeTo((b) => blocks.write(b)).then(
    () => blocks.end(),
    (err: Error) => {
      sink.destroy(err);
      throw err;
    },
  );
  // Both settle before returning (spools removed, streams closed); the first error wins.
  const [a, b] = await Promise.allSettled([flattened, written]);
  if (a.status === "rejected") throw a.reason;
  if (b.status === "rejected") throw b.reason;
  return { ...b.value, entries: flattener.stats.entriesWritten, warnings: flattener.stats.warnings };
}

/**
 * Where a template's tar goes: compressed into `target`; `written` gives the file's size
 * and sha256 once it is complete.
 */
function templateSink(target: string, compression?: OutputCompression): { sink: Writable; written: Promise<{ size: number; sha256: string }> } {
  const compressor = compression ? createCompressor(compression) : new PassThrough({ highWaterMark: 1 << 20 });
  if (!compressor) {
    // The zstd program writes the file; hash it afterwards (from the page cache).
    const sink = new ZstdFileWriter(target);
    return { sink, written: finished(sink).then(() => hashFile(target)) };
  }
  const tap = new HashTap();
  const written = pipeline(compressor, tap, fs.createWriteStream(target, { flags: "wx" })).then(() => ({ size: tap.size, sha256: tap.hash.digest("hex") }));
  return { sink: compressor, written };
}

async function hashFile(file: string): Promise<{ size: number; sha256: string }> {
  const tap = new HashTap();
  await pipeline(fs.createReadStream(file, { highWaterMark: 1 << 18 }), tap, new Writable({ write: (_c, _e, cb) => cb() }));
  return { size: tap.size, sha256: tap.hash.digest("hex") };
}

type Msg =
  | { t: "progress"; phase: "scan" | "write"; done: number; total: number }
  | { t: "warn"; message: string }
  | { t: "done"; result: ConvertResult }
  | { t: "error"; code?: OciErrorCode; message: string; stack?: string };

const MARK = "__pulumiProxmoxLxcOciConvert";

/**
 * Where conversions run by default: a worker, except when this module runs from its
 * TypeScript source (tests, development), where a worker would have to load the
 * TypeScript compiler again (~1 s each). Tests cover the worker path explicitly.
 */
export const WORKER_BY_DEFAULT = !__filename.endsWith(".ts");

/** Runs a conversion in a worker or on this thread. */
export function convert(job: ConvertJob, cb: ConvertCallbacks, inWorker = WORKER_BY_DEFAULT): Promise<ConvertResult> {
  return inWorker ? convertInWorker(job, cb) : convertHere(job, cb);
}

/**
 * Old-generation growth while conversions run: V8 lets the old generation grow to up to
 * ~4x its size after the last full GC before the next one when GC time is low, and a fast
 * pass 2 promotes short-lived per-entry objects (headers, names, I/O requests alive across
 * a scavenge) at a steady rate: measured on the bench image, the worker's old generation
 * went 11 MB -> 41 MB of mostly garbage before its second full GC (-> 5 MB), lifting .tar.zst
 * peak RSS to 129-133 MiB. A 1.5x growth factor while a conversion runs keeps it at
 * 115-120 MiB for ~the same CPU time. It is a growth factor, not a cap: a huge image's
 * live pass-1 records still get all the heap they need (no OOM risk, unlike
 * `maxOldGenerationSizeMb`). V8 flags are process-wide, so it is set while at least one
 * conversion runs and reset (V8's default, 0 = dynamic) when the last one ends.
 */
const CONVERT_HEAP_GROWING_PERCENT = 50;
let activeConversions = 0;

function conversionStarted(): void {
  if (activeConversions++ === 0) v8.setFlagsFromString(`--heap-growing-percent=${CONVERT_HEAP_GROWING_PERCENT}`);
}

function conversionEnded(): void {
  if (--activeConversions === 0) v8.setFlagsFromString("--heap-growing-percent=0");
}

/** Worker conversions running now (while > 0, the growth factor above is in force). */
export function workerConversionsRunning(): number {
  return activeConversions;
}

/**
 * The conversion in a worker thread (see the module comment). Under ts-node (tests), the
 * worker registers ts-node itself, since loaders from the parent are not inherited.
 */
export function convertInWorker(job: ConvertJob, cb: ConvertCallbacks = {}, youngGenerationMb = 2): Promise<ConvertResult> {
  conversionStarted();
  const running = new Promise<ConvertResult>((resolve, reject) => {
    const data = { [MARK]: true, job };
    const resourceLimits = { maxYoungGenerationSizeMb: youngGenerationMb };
    const worker = __filename.endsWith(".ts")
      ? new Worker(`require(${JSON.stringify(require.resolve("ts-node/register/transpile-only"))}); require(${JSON.stringify(__filename)});`, {
          eval: true,
          workerData: data,
          resourceLimits,
        })
      : new Worker(__filename, { workerData: data, resourceLimits });
    let settled = false;
    worker.on("message", (m: Msg) => {
      if (m.t === "progress") cb.onProgress?.(m.phase, m.done, m.total);
      else if (m.t === "warn") cb.onWarning?.(m.message);
      else if (m.t === "done") {
        settled = true;
        resolve(m.result);
      } else {
        settled = true;
        const err = m.code ? new OciError(m.code, m.message) : new Error(m.message);
        if (m.stack) err.stack = m.stack;
        reject(err);
      }
    });
    worker.on("error", (err) => {
      if (!settled) {
        settled = true;
        reject(err);
      }
    });
    worker.on("exit", (code) => {
      if (!settled) reject(new Error(`image conversion worker exited with code ${code} before finishing`));
    });
  });
  return running.finally(conversionEnded);
}

if (!isMainThread && (workerData as Record<string, unknown> | null)?.[MARK]) {
  const post = (m: Msg) => parentPort!.postMessage(m);
  let last = 0;
  convertHere((workerData as { job: ConvertJob }).job, {
    onProgress: (phase, done, total) => {
      // At most ~10 messages a second: progress is for humans.
      const now = Date.now();
      if (now - last < 100 && done < total) return;
      last = now;
      post({ t: "progress", phase, done, total });
    },
    onWarning: (message) => post({ t: "warn", message }),
  }).then(
    (result) => post({ t: "done", result }),
    (err: Error) => post({ t: "error", code: err instanceof OciError ? err.code : undefined, message: err.message, stack: err.stack }),
  );
}
