/**
 * A small streaming tar codec (ustar + POSIX pax + GNU long names).
 *
 * Why not tar-stream or node-tar: both decode pax records as UTF-8 strings, which corrupts
 * binary xattr values (`SCHILY.xattr.security.capability` is raw bytes), and the image
 * spec requires xattrs to survive. Here pax values stay Buffers end to end. Bodies are
 * streamed chunk by chunk (never buffered whole), so memory stays flat for any layer size.
 */
import { OciError } from "./errors";

export type TarType = "file" | "link" | "symlink" | "char" | "block" | "dir" | "fifo";

export interface TarHeader {
  /** Path as stored (not normalised). */
  name: string;
  type: TarType;
  /** Permission bits including setuid/setgid/sticky (0o7777). */
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  size: number;
  /** Seconds since the epoch (integer part only; sub-second precision is dropped). */
  mtime: number;
  linkname: string;
  devmajor: number;
  devminor: number;
  /** Extended attributes from `SCHILY.xattr.<name>` pax records, values as raw bytes. */
  xattrs?: Map<string, Buffer>;
}

export interface TarEntry {
  header: TarHeader;
  /** The body's chunks; must be consumed fully or not at all before the next entry. */
  body(): AsyncGenerator<Buffer>;
}

/** Pax header and GNU long-name bodies above this are refused: they are held in memory. */
const MAX_META_BYTES = 1 << 20;

const TYPES: Record<string, TarType> = {
  "0": "file",
  "\0": "file",
  "7": "file",
  "1": "link",
  "2": "symlink",
  "3": "char",
  "4": "block",
  "5": "dir",
  "6": "fifo",
};

/** Pulls exact byte counts from an async chunk source without copying more than needed. */
class ByteReader {
  private buf: Buffer = Buffer.alloc(0);
  private done = false;
  constructor(private readonly it: AsyncIterator<Buffer>) {}

  private async fill(): Promise<boolean> {
    if (this.done) return false;
    const r = await this.it.next();
    if (r.done) {
      this.done = true;
      return false;
    }
    const chunk = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    return true;
  }

  /** Exactly n bytes, or null at a clean end of input before any byte. */
  async read(n: number): Promise<Buffer | null> {
    while (this.buf.length < n) {
      if (!(await this.fill())) {
        if (this.buf.length === 0) return null;
        throw new OciError("HOSTILE_LAYER", "tar stream is truncated (unexpected end of data)");
      }
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  /** Yields the next n bytes as slices of incoming chunks. */
  async *take(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.buf.length === 0 && !(await this.fill())) {
        throw new OciError("HOSTILE_LAYER", "tar stream is truncated inside an entry body");
      }
      const k = Math.min(left, this.buf.length);
      const out = this.buf.subarray(0, k);
      this.buf = this.buf.subarray(k);
      left -= k;
      yield out;
    }
  }

  /** Discards n bytes without yielding them (pass 1 skips every body this way). */
  async skip(n: number): Promise<void> {
    let left = n;
    while (left > 0) {
      if (this.buf.length === 0 && !(await this.fill())) {
        throw new OciError("HOSTILE_LAYER", "tar stream is truncated inside an entry body");
      }
      const k = Math.min(left, this.buf.length);
      this.buf = this.buf.subarray(k);
      left -= k;
    }
  }

  /** Drains the rest (tar padding after the end marker) so the source finishes cleanly. */
  async drain(): Promise<void> {
    this.buf = Buffer.alloc(0);
    while (await this.fill()) this.buf = Buffer.alloc(0);
  }
}

function cstr(b: Buffer, off: number, len: number): string {
  const s = b.subarray(off, off + len);
  const z = s.indexOf(0);
  return (z >= 0 ? s.subarray(0, z) : s).toString("utf8");
}

function num(b: Buffer, off: number, len: number, field: string): number {
  const f = b.subarray(off, off + len);
  if (f[0] & 0x80) {
    // GNU base-256: big-endian two's complement; negative values are never valid here.
    if (f[0] & 0x40) throw new OciError("HOSTILE_LAYER", `tar header field '${field}' is negative`);
    let v = f[0] & 0x3f;
    for (let i = 1; i < f.length; i++) v = v * 256 + f[i];
    if (!Number.isSafeInteger(v)) throw new OciError("HOSTILE_LAYER", `tar header field '${field}' is too large`);
    return v;
  }
  const s = f.toString("latin1").replace(/\0.*$/s, "").trim();
  if (!s) return 0;
  if (!/^[0-7]+$/.test(s)) throw new OciError("HOSTILE_LAYER", `tar header field '${field}' is not octal: '${s}'`);
  return parseInt(s, 8);
}

function checksumOk(b: Buffer): boolean {
  const stored = num(b, 148, 8, "checksum");
  let unsigned = 0;
  for (let i = 0; i < 512; i++) unsigned += i >= 148 && i < 156 ? 32 : b[i];
  return stored === unsigned;
}

/** Parses pax records `"<len> <key>=<value>\n"`; values stay raw bytes. */
export function parsePax(buf: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let pos = 0;
  while (pos < buf.length) {
    const sp = buf.indexOf(0x20, pos);
    if (sp < 0) break;
    const len = parseInt(buf.toString("latin1", pos, sp), 10);
    if (!Number.isSafeInteger(len) || len <= 0 || pos + len > buf.length) {
      throw new OciError("HOSTILE_LAYER", "tar pax header is malformed (bad record length)");
    }
    const rec = buf.subarray(sp + 1, pos + len - 1); // drop trailing "\n"
    const eq = rec.indexOf(0x3d);
    if (eq < 0) throw new OciError("HOSTILE_LAYER", "tar pax header is malformed (record without '=')");
    out.set(rec.toString("utf8", 0, eq), rec.subarray(eq + 1));
    pos += len;
  }
  return out;
}

function paxNumber(v: Buffer, key: string): number {
  const s = v.toString("latin1");
  const n = Number(s);
  if (!/^-?[0-9]+(\.[0-9]+)?$/.test(s) || !Number.isFinite(n)) {
    throw new OciError("HOSTILE_LAYER", `tar pax record '${key}' is not a number`);
  }
  return Math.floor(n);
}

/** Pax, GNU long name and long link of the entry being read (they precede its header). */
interface PendingMeta {
  pax?: Map<string, Buffer>;
  longName?: string;
  longLink?: string;
}

/** Metadata entry types whose bodies describe the next entry. */
function isMetaFlag(flag: string): boolean {
  return flag === "x" || flag === "g" || flag === "L" || flag === "K";
}

/** Checks a header block; returns its type flag and body size (padded and not). */
function blockInfo(h: Buffer): { flag: string; size: number; padded: number } {
  if (!checksumOk(h)) throw new OciError("HOSTILE_LAYER", "tar header checksum mismatch (corrupt or not a tar stream)");
  const flag = String.fromCharCode(h[156]);
  const size = num(h, 124, 12, "size");
  if (isMetaFlag(flag) && size > MAX_META_BYTES) {
    throw new OciError("HOSTILE_LAYER", `tar metadata entry of ${size} bytes is larger than the ${MAX_META_BYTES} allowed`);
  }
  return { flag, size, padded: Math.ceil(size / 512) * 512 };
}

/** Records a metadata entry's body (`data`, unpadded) for the entry that follows. */
function applyMeta(flag: string, data: Buffer, meta: PendingMeta): void {
  if (flag === "x") meta.pax = parsePax(Buffer.from(data));
  else if (flag === "L") meta.longName = cstr(data, 0, data.length);
  else if (flag === "K") meta.longLink = cstr(data, 0, data.length);
}

/** Decodes an entry's header block plus its pending metadata; returns the body size in the stream. */
function decodeEntry(h: Buffer, flag: string, size: number, meta: PendingMeta): { header: TarHeader; bodySize: number } {
  const type = TYPES[flag];
  if (!type) {
    throw new OciError("UNSUPPORTED", `tar entry type '${flag === "\0" ? "NUL" : flag}' (${cstr(h, 0, 100)}) is not supported (sparse/multi-volume/vendor types)`);
  }
  const ustar = h.toString("latin1", 257, 263) === "ustar\0";
  let name = cstr(h, 0, 100);
  if (ustar) {
    const prefix = cstr(h, 345, 155);
    if (prefix) name = `${prefix}/${name}`;
  }
  const header: TarHeader = {
    name: meta.longName ?? name,
    type,
    mode: num(h, 100, 8, "mode") & 0o7777,
    uid: num(h, 108, 8, "uid"),
    gid: num(h, 116, 8, "gid"),
    size,
    mtime: num(h, 136, 12, "mtime"),
    linkname: meta.longLink ?? cstr(h, 157, 100),
    uname: cstr(h, 265, 32),
    gname: cstr(h, 297, 32),
    devmajor: type === "char" || type === "block" ? num(h, 329, 8, "devmajor") : 0,
    devminor: type === "char" || type === "block" ? num(h, 337, 8, "devminor") : 0,
  };
  if (meta.pax) {
    for (const [k, v] of meta.pax) {
      if (k === "path") header.name = v.toString("utf8");
      else if (k === "linkpath") header.linkname = v.toString("utf8");
      else if (k === "size") header.size = paxNumber(v, k);
      else if (k === "uid") header.uid = paxNumber(v, k);
      else if (k === "gid") header.gid = paxNumber(v, k);
      else if (k === "mtime") header.mtime = paxNumber(v, k);
      else if (k === "uname") header.uname = v.toString("utf8");
      else if (k === "gname") header.gname = v.toString("utf8");
      else if (k.startsWith("SCHILY.xattr.")) (header.xattrs ??= new Map()).set(k.slice("SCHILY.xattr.".length), v);
      else if (k.startsWith("GNU.sparse.")) throw new OciError("UNSUPPORTED", `tar entry '${header.name}' is a GNU sparse file, which is not supported`);
    }
  }
  meta.pax = meta.longName = meta.longLink = undefined;
  // Only regular files carry data; a size on a link/dir is ignored by GNU tar too, but
  // its bytes are still in the stream.
  const bodySize = header.size;
  if (type !== "file") header.size = 0;
  return { header, bodySize };
}

/**
 * Reads a tar stream entry by entry. Global pax headers (`g`) are ignored (they carry
 * nothing layers use); GNU sparse files and unknown entry types are refused.
 */
export async function* readTar(input: AsyncIterable<Buffer>): AsyncGenerator<TarEntry> {
  const r = new ByteReader(input[Symbol.asyncIterator]());
  const meta: PendingMeta = {};
  for (;;) {
    const h = await r.read(512);
    if (h === null) return; // some writers omit the end-of-archive blocks
    if (h.every((x) => x === 0)) {
      await r.drain();
      return;
    }
    const { flag, size, padded } = blockInfo(h);
    if (isMetaFlag(flag)) {
      const raw = size ? await r.read(padded) : Buffer.alloc(0);
      if (raw === null) throw new OciError("HOSTILE_LAYER", "tar stream is truncated inside a metadata entry");
      applyMeta(flag, raw.subarray(0, size), meta);
      continue;
    }
    const { header, bodySize } = decodeEntry(h, flag, size, meta);
    const type = header.type;
    const bodyPadded = Math.ceil(bodySize / 512) * 512;
    let consumed = false;
    const entry: TarEntry = {
      header,
      body: async function* () {
        if (consumed) throw new Error("tar entry body read twice");
        consumed = true;
        if (type === "file") yield* r.take(bodySize);
        else await r.skip(bodySize);
        await r.skip(bodyPadded - bodySize);
      },
    };
    yield entry;
    if (!consumed) {
      consumed = true;
      await r.skip(bodyPadded);
    }
  }
}

/**
 * The same tar reading over a file (a layer spool) into one reused buffer, for hot loops:
 * `next()` parses headers in place and awaits only to refill the buffer; a body is handed
 * out as slices of that buffer (valid until the next call on this reader), and a body
 * not wanted is skipped by moving the read position, never read. No allocation and no
 * promise per chunk. `read` is `FileHandle.read`'s positional form; `size` the file's size.
 */
export class BufferedTarReader {
  private buf: Buffer;
  private pos = 0;
  private end = 0;
  /** File offset of buf[end]: where the next read starts. */
  private filePos = 0;
  private bodyLeft = 0;
  private padLeft = 0;
  private bodyIsFile = false;

  constructor(
    private readonly read: (buf: Buffer, off: number, len: number, position: number) => Promise<number>,
    private readonly size: number,
    bufferSize = 1 << 18,
  ) {
    this.buf = Buffer.allocUnsafe(bufferSize);
  }

  /** Makes at least `n` bytes available at `pos` (fewer only at the end of the file). */
  private async ensure(n: number): Promise<void> {
    if (this.end - this.pos >= n) return;
    if (n > this.buf.length) {
      // A metadata body (at most MAX_META_BYTES, padded) larger than the buffer: grow it.
      const bigger = Buffer.allocUnsafe(n);
      this.buf.copy(bigger, 0, this.pos, this.end);
      this.end -= this.pos;
      this.pos = 0;
      this.buf = bigger;
    }
    if (this.pos > 0) {
      this.buf.copy(this.buf, 0, this.pos, this.end);
      this.end -= this.pos;
      this.pos = 0;
    }
    while (this.end < n && this.filePos < this.size) {
      const got = await this.read(this.buf, this.end, Math.min(this.buf.length - this.end, this.size - this.filePos), this.filePos);
      if (got === 0) throw new OciError("HOSTILE_LAYER", "tar stream is truncated (the file is shorter than it was)");
      this.end += got;
      this.filePos += got;
    }
  }

  /** The next entry's header, or null at the end of the archive; skips an unread body. */
  async next(): Promise<TarHeader | null> {
    if (this.bodyLeft || this.padLeft) this.skipBody();
    const meta: PendingMeta = {};
    for (;;) {
      if (this.end - this.pos < 512) await this.ensure(512);
      const avail = this.end - this.pos;
      if (avail === 0) return null; // some writers omit the end-of-archive blocks
      if (avail < 512) throw new OciError("HOSTILE_LAYER", "tar stream is truncated (unexpected end of data)");
      const h = this.buf.subarray(this.pos, this.pos + 512);
      if (isZeroBlock(h)) return null;
      const { flag, size, padded } = blockInfo(h);
      this.pos += 512;
      if (isMetaFlag(flag)) {
        if (this.end - this.pos < padded) await this.ensure(padded);
        if (this.end - this.pos < padded) throw new OciError("HOSTILE_LAYER", "tar stream is truncated inside a metadata entry");
        applyMeta(flag, this.buf.subarray(this.pos, this.pos + size), meta);
        this.pos += padded;
        continue;
      }
      // decodeEntry copies what it keeps (strings; pax values were copied by applyMeta).
      const { header, bodySize } = decodeEntry(h, flag, size, meta);
      this.bodyLeft = bodySize;
      this.padLeft = Math.ceil(bodySize / 512) * 512 - bodySize;
      this.bodyIsFile = header.type === "file";
      return header;
    }
  }

  /**
   * Hands the current file's body to `sink` in slices of the buffer (each valid until the
   * sink's promise, if any, settles); returns the byte count.
   */
  async copyBody(sink: (piece: Buffer) => Promise<void> | undefined): Promise<number> {
    let n = 0;
    while (this.bodyLeft > 0 && this.bodyIsFile) {
      if (this.pos === this.end) await this.ensure(1);
      if (this.pos === this.end) throw new OciError("HOSTILE_LAYER", "tar stream is truncated inside an entry body");
      const k = Math.min(this.bodyLeft, this.end - this.pos);
      const piece = this.buf.subarray(this.pos, this.pos + k);
      this.pos += k;
      this.bodyLeft -= k;
      n += k;
      const p = sink(piece);
      if (p) await p;
    }
    this.skipBody();
    return n;
  }

  /** Skips the rest of the current body and its padding: in the buffer, else by seeking. */
  private skipBody(): void {
    let left = this.bodyLeft + this.padLeft;
    this.bodyLeft = this.padLeft = 0;
    const inBuf = Math.min(left, this.end - this.pos);
    this.pos += inBuf;
    left -= inBuf;
    if (left === 0) return;
    if (this.filePos + left > this.size) throw new OciError("HOSTILE_LAYER", "tar stream is truncated inside an entry body");
    this.filePos += left;
  }
}

function isZeroBlock(h: Buffer): boolean {
  for (let i = 0; i < 512; i++) if (h[i] !== 0) return false;
  return true;
}

// ---------------------------------------------------------------------------------------
// Writer

const FLAG: Record<TarType, string> = { file: "0", link: "1", symlink: "2", char: "3", block: "4", dir: "5", fifo: "6" };

function octal(v: number, len: number): string | null {
  const s = Math.max(0, Math.floor(v)).toString(8);
  return s.length > len - 1 ? null : s.padStart(len - 1, "0") + "\0";
}

function paxRecord(key: string, value: Buffer): Buffer {
  // The length prefix counts itself, so iterate until it is stable.
  const body = Buffer.concat([Buffer.from(` ${key}=`, "utf8"), value, Buffer.from("\n")]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len), "latin1"), body]);
}

/** Splits a name into ustar prefix/name, or null if it does not fit. */
function splitUstarName(name: string): [string, string] | null {
  const b = Buffer.byteLength(name);
  if (b <= 100) return ["", name];
  for (let i = name.indexOf("/"); i >= 0; i = name.indexOf("/", i + 1)) {
    const prefix = name.slice(0, i);
    const rest = name.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(rest) <= 100 && rest.length > 0) return [prefix, rest];
  }
  return null;
}

function headerBlock(h: TarHeader, name: string, prefix: string, linkname: string): Buffer {
  const b = Buffer.alloc(512);
  b.write(name, 0, 100, "utf8");
  b.write(octal(h.mode & 0o7777, 8) ?? "0000000\0", 100, "latin1");
  b.write(octal(h.uid, 8) ?? "0000000\0", 108, "latin1");
  b.write(octal(h.gid, 8) ?? "0000000\0", 116, "latin1");
  b.write(octal(h.size, 12) ?? "00000000000\0", 124, "latin1");
  b.write(octal(h.mtime, 12) ?? "00000000000\0", 136, "latin1");
  b.write("        ", 148, "latin1");
  b.write(FLAG[h.type], 156, "latin1");
  b.write(linkname, 157, 100, "utf8");
  b.write("ustar\0", 257, "latin1");
  b.write("00", 263, "latin1");
  b.write(h.uname.slice(0, 31), 265, 32, "utf8");
  b.write(h.gname.slice(0, 31), 297, 32, "utf8");
  b.write(octal(h.devmajor, 8) ?? "0000000\0", 329, "latin1");
  b.write(octal(h.devminor, 8) ?? "0000000\0", 337, "latin1");
  b.write(prefix, 345, 155, "utf8");
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += b[i];
  b.write(sum.toString(8).padStart(6, "0") + "\0 ", 148, "latin1");
  return b;
}

/**
 * Encodes one entry header: plain ustar when everything fits, else a pax header first
 * (long names/link targets, big ids/sizes, xattrs). Returns 512-byte-aligned bytes.
 */
export function encodeHeader(h: TarHeader): Buffer {
  const records: Buffer[] = [];
  const split = splitUstarName(h.name);
  const linkFits = Buffer.byteLength(h.linkname) <= 100;
  if (!split) records.push(paxRecord("path", Buffer.from(h.name, "utf8")));
  if (!linkFits) records.push(paxRecord("linkpath", Buffer.from(h.linkname, "utf8")));
  if (octal(h.size, 12) === null) records.push(paxRecord("size", Buffer.from(String(h.size))));
  if (octal(h.uid, 8) === null) records.push(paxRecord("uid", Buffer.from(String(h.uid))));
  if (octal(h.gid, 8) === null) records.push(paxRecord("gid", Buffer.from(String(h.gid))));
  if (h.uname.length > 31) records.push(paxRecord("uname", Buffer.from(h.uname, "utf8")));
  if (h.gname.length > 31) records.push(paxRecord("gname", Buffer.from(h.gname, "utf8")));
  if (h.xattrs) for (const [k, v] of h.xattrs) records.push(paxRecord(`SCHILY.xattr.${k}`, v));
  const main = headerBlock(h, split ? split[1] : h.name.slice(0, 99), split ? split[0] : "", linkFits ? h.linkname : h.linkname.slice(0, 99));
  if (!records.length) return main;
  const pax = Buffer.concat(records);
  const paxHeader = headerBlock(
    { ...h, type: "file", size: pax.length, mode: 0o644, uid: 0, gid: 0, uname: "", gname: "", linkname: "", devmajor: 0, devminor: 0, xattrs: undefined },
    "PaxHeader",
    "",
    "",
  );
  paxHeader[156] = "x".charCodeAt(0);
  // Recompute the checksum after changing the type flag.
  paxHeader.write("        ", 148, "latin1");
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += paxHeader[i];
  paxHeader.write(sum.toString(8).padStart(6, "0") + "\0 ", 148, "latin1");
  return Buffer.concat([paxHeader, pax, Buffer.alloc(padding(pax.length)), main]);
}

export function padding(size: number): number {
  return (512 - (size % 512)) % 512;
}

/** Two zero blocks end an archive. */
export const TAR_END = Buffer.alloc(1024);
