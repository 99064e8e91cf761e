/**
 * Gathers pass 2's output (512-byte headers, body slices, padding) into large blocks and
 * writes whole blocks to a stream: one stream write per block instead of one per piece,
 * and the pieces are copied at once, so the caller may reuse its buffers.
 *
 * With `reuse`, a block goes back to a small free list when the stream's write callback
 * says it is done with it (ParallelGzip has copied it; the zstd process's pipe has taken
 * it): no allocation per block, so no dead 1 MiB buffers waiting for a GC. Without, every
 * block is fresh (for consumers that keep the chunks, like a PassThrough).
 */
import { Writable } from "node:stream";

export class BlockWriter {
  private readonly free: Buffer[] = [];
  private block: Buffer;
  private used = 0;
  private allocated = 1;
  private waiting?: { resolve: () => void; reject: (e: Error) => void };
  private failed?: Error;

  constructor(
    private readonly dest: Writable,
    private readonly opts: { blockSize?: number; reuse?: boolean; blocks?: number } = {},
  ) {
    this.block = Buffer.allocUnsafe(this.size);
    const fail = (err?: Error) => {
      this.failed ??= err ?? new Error("the output stream closed before the rootfs tar was complete");
      this.waiting?.reject(this.failed);
      this.waiting = undefined;
    };
    dest.on("error", fail);
    dest.on("close", () => {
      if (!dest.writableFinished) fail();
    });
  }

  private get size(): number {
    return this.opts.blockSize ?? 1 << 18;
  }

  /**
   * Copies `b` into blocks. Returns a promise only when a full block had to wait for a
   * free one (backpressure): callers `const p = w.write(b); if (p) await p;`, and must
   * keep `b` unchanged until it settles.
   */
  write(b: Buffer): Promise<void> | undefined {
    if (this.failed) return Promise.reject(this.failed);
    let off = 0;
    while (off < b.length) {
      const n = b.copy(this.block, this.used, off);
      this.used += n;
      off += n;
      if (this.used === this.size) {
        const p = this.flush();
        if (p) {
          const rest = b.subarray(off);
          return rest.length ? p.then(() => this.write(rest)) : p;
        }
      }
    }
    return undefined;
  }

  /** Writes the last partial block and ends the stream. */
  async end(): Promise<void> {
    if (this.used) {
      const p = this.flush();
      if (p) await p;
    }
    if (this.failed) throw this.failed;
    this.dest.end();
  }

  private flush(): Promise<void> | undefined {
    const full = this.block;
    const reuse = this.opts.reuse ?? true;
    const ok = this.dest.write(full.subarray(0, this.used), (err) => {
      if (err || !reuse) return;
      this.free.push(full);
      const w = this.waiting;
      this.waiting = undefined;
      w?.resolve();
    });
    this.used = 0;
    if (!reuse) {
      this.block = Buffer.allocUnsafe(this.size);
      if (ok) return undefined;
      // The consumer keeps the blocks: wait until it has read some.
      return new Promise<void>((resolve, reject) => {
        this.waiting = { resolve, reject };
        this.dest.once("drain", () => {
          this.waiting = undefined;
          resolve();
        });
      });
    }
    const next = this.free.pop() ?? (this.allocated < (this.opts.blocks ?? 3) ? (this.allocated++, Buffer.allocUnsafe(this.size)) : undefined);
    if (next) {
      this.block = next;
      return undefined;
    }
    return new Promise<void>((resolve, reject) => {
      this.waiting = { resolve, reject };
    }).then(() => {
      this.block = this.free.pop()!;
    });
  }
}
