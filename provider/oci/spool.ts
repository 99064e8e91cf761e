/**
 * Layer spools: the uncompressed tar of one layer, written to a temp file while pass 1
 * decompresses and scans it, and read back by pass 2. So each layer is decompressed once,
 * not twice: gunzip is ~1.4 s of CPU per 300 MB image, reading a file back from the page
 * cache a few tenths of that.
 *
 * Costs disk space, not memory: up to the image's uncompressed size (all layers' tars)
 * next to the output, each spool deleted as soon as pass 2 has consumed it.
 *
 * Writes are synchronous on purpose: the conversion runs in its own worker thread, a write
 * to the page cache is a memcpy, and an async write would cost a promise round trip per
 * chunk and keep the chunk alive (and its memory counted) until the pool thread ran.
 */
import * as fs from "node:fs";

export class SpoolWriter {
  private fd: number | undefined;
  size = 0;

  constructor(readonly path: string) {
    // wx: never write through an existing file (or a link planted in its place).
    this.fd = fs.openSync(path, "wx", 0o600);
  }

  write(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) off += fs.writeSync(this.fd!, chunk, off, chunk.length - off);
    this.size += chunk.length;
  }

  close(): void {
    if (this.fd === undefined) return;
    fs.closeSync(this.fd);
    this.fd = undefined;
  }
}

/** Deletes a spool; a missing one is fine (already consumed, or never written). */
export function removeSpool(p: string): void {
  fs.rmSync(p, { force: true });
}
