/**
 * Read-ahead of a byte stream: starts pulling `src` at once and keeps up to `maxBytes`
 * of it queued until the consumer gets there. Pass 2 uses it to start decompressing the
 * next layer (on zlib's thread pool) while the current one is still being flattened and
 * compressed, so the JavaScript thread does not wait for the first chunks at each layer
 * boundary. Bounded: the pump stops pulling while the queue is full.
 */
export class ReadAhead implements AsyncIterable<Buffer> {
  private readonly queue: Buffer[] = [];
  private queued = 0;
  private ended = false;
  private error: unknown;
  private wake?: () => void;
  private room?: () => void;
  private cancelled = false;
  private readonly iterator: AsyncIterator<Buffer>;

  constructor(src: AsyncIterable<Buffer>, private readonly maxBytes: number) {
    this.iterator = src[Symbol.asyncIterator]();
    void this.pump();
  }

  private async pump(): Promise<void> {
    try {
      for (;;) {
        while (this.queued >= this.maxBytes && !this.cancelled) await new Promise<void>((r) => (this.room = r));
        if (this.cancelled) break;
        const r = await this.iterator.next();
        if (r.done) break;
        this.queue.push(r.value);
        this.queued += r.value.length;
        this.wake?.();
      }
    } catch (err) {
      this.error = err;
    }
    this.ended = true;
    this.wake?.();
  }

  /** Stops reading and releases the source (its `finally` runs), when it is not consumed. */
  async cancel(): Promise<void> {
    this.cancelled = true;
    this.room?.();
    await this.iterator.return?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    for (;;) {
      const c = this.queue.shift();
      if (c) {
        this.queued -= c.length;
        this.room?.();
        yield c;
        continue;
      }
      if (this.ended) {
        if (this.error !== undefined) throw this.error;
        return;
      }
      await new Promise<void>((r) => (this.wake = r));
      this.wake = undefined;
    }
  }
}
