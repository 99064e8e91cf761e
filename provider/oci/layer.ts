/**
 * Opening a layer blob as its uncompressed tar stream, with optional verification of
 * both the blob digest (compressed bytes) and the diff_id (uncompressed bytes).
 */
import * as fs from "node:fs";
import { Transform, TransformCallback } from "node:stream";
import { createDecompressor, sniffCompression } from "./compression";
import { DigestVerifier } from "./digest";
import { OciError } from "./errors";
import { SpoolWriter } from "./spool";

export interface LayerFile {
  /** Blob digest (of the stored, possibly compressed, bytes). */
  digest: string;
  /** Uncompressed digest from the config's rootfs.diff_ids. */
  diffId?: string;
  mediaType: string;
  /** Where the blob is on disk (cache or an OCI layout directory). */
  path: string;
  size: number;
}

class Tap extends Transform {
  constructor(private readonly fn: (c: Buffer) => void) {
    super({ highWaterMark: 1 << 18 });
  }
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.fn(chunk);
    cb(null, chunk);
  }
}

async function readHead(file: string): Promise<Buffer> {
  const fh = await fs.promises.open(file, "r");
  try {
    const b = Buffer.alloc(8);
    const { bytesRead } = await fh.read(b, 0, 8, 0);
    return b.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/**
 * The layer's uncompressed bytes as an async iterable. With `verify`, a digest or diff_id
 * mismatch throws at the end of the stream (so the consumer must read it to the end).
 * With `spool`, every uncompressed chunk is also written there (before it is yielded).
 */
export async function* openLayer(
  layer: LayerFile,
  opts: { verify?: boolean; onCompressedBytes?: (n: number) => void; spool?: SpoolWriter } = {},
): AsyncGenerator<Buffer> {
  let head: Buffer;
  try {
    head = await readHead(layer.path);
  } catch (err) {
    throw new OciError("NOT_FOUND", `layer ${layer.digest}: blob file '${layer.path}' cannot be read: ${(err as Error).message}`);
  }
  const kind = sniffCompression(head);
  if (kind === "xz" || kind === "bzip2") {
    throw new OciError("UNSUPPORTED", `layer ${layer.digest} is ${kind}-compressed; OCI layers are tar, tar+gzip or tar+zstd`);
  }
  const blobCheck = opts.verify ? new DigestVerifier(layer.digest) : undefined;
  const diffCheck = opts.verify && layer.diffId ? new DigestVerifier(layer.diffId) : undefined;
  const file = fs.createReadStream(layer.path, { highWaterMark: 1 << 18 });
  const decompress = createDecompressor(kind);
  const tapIn = new Tap((c) => {
    blobCheck?.update(c);
    opts.onCompressedBytes?.(c.length);
  });
  // Errors anywhere in the chain surface through the iterated stream.
  const fail = (err: Error) => decompress.destroy(err);
  file.on("error", fail);
  tapIn.on("error", fail);
  file.pipe(tapIn).pipe(decompress);
  try {
    for await (const chunk of decompress) {
      diffCheck?.update(chunk as Buffer);
      opts.spool?.write(chunk as Buffer);
      yield chunk as Buffer;
    }
  } catch (err) {
    if (err instanceof OciError) throw err;
    throw new OciError("HOSTILE_LAYER", `layer ${layer.digest}: cannot decompress (${kind}): ${(err as Error).message}`, { cause: err });
  } finally {
    file.destroy();
  }
  blobCheck?.verify(`layer ${layer.digest}`);
  diffCheck?.verify(`layer ${layer.digest} uncompressed content (rootfs.diff_ids)`);
}
