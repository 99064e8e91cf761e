/**
 * A minimal tar reader/writer for the sandbox's own needs: reading OCI layouts and
 * `/etc/os-release` from templates, and writing its tiny appliance templates. Handles
 * ustar, GNU long names (`L`) and PAX `path`; that is all CT templates and OCI layouts
 * produced by skopeo, tar and tar-stream use. Kept dependency-free because the sandbox
 * ships as a runtime feature (`pve-lxc sandbox`).
 */

export interface TarEntry {
  name: string;
  type: "file" | "dir" | "symlink" | "other";
  size: number;
  /** Present for files whose name the caller wanted. */
  data?: Buffer;
  /** Target of a symlink (as stored, relative or absolute). */
  link?: string;
}

function str(buf: Buffer, off: number, len: number): string {
  const raw = buf.subarray(off, off + len);
  const nul = raw.indexOf(0);
  return raw.subarray(0, nul < 0 ? raw.length : nul).toString("utf8");
}

function num(buf: Buffer, off: number, len: number): number {
  if (buf[off] & 0x80) {
    // base-256 (GNU) for large values
    let v = 0;
    for (let i = off + 1; i < off + len; i++) v = v * 256 + buf[i];
    return v;
  }
  const s = str(buf, off, len).trim();
  return s ? parseInt(s, 8) : 0;
}

function parsePax(data: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < data.length) {
    const sp = data.indexOf(0x20, i);
    if (sp < 0) break;
    const len = Number(data.subarray(i, sp).toString());
    if (!len) break;
    const rec = data.subarray(sp + 1, i + len - 1).toString("utf8");
    const eq = rec.indexOf("=");
    if (eq > 0) out[rec.slice(0, eq)] = rec.slice(eq + 1);
    i += len;
  }
  return out;
}

/** Walk a tar archive; `want(name)` decides which file bodies are returned. */
export function readTar(buf: Buffer, want: (name: string) => boolean = () => false): TarEntry[] {
  const out: TarEntry[] = [];
  let off = 0;
  let longName: string | undefined;
  let pax: Record<string, string> = {};
  while (off + 512 <= buf.length) {
    const h = buf.subarray(off, off + 512);
    if (h.every((b) => b === 0)) break;
    const size = num(h, 124, 12);
    const flag = String.fromCharCode(h[156] || 0x30);
    const bodyStart = off + 512;
    const body = buf.subarray(bodyStart, bodyStart + size);
    off = bodyStart + Math.ceil(size / 512) * 512;
    if (flag === "L") {
      longName = str(body, 0, body.length);
      continue;
    }
    if (flag === "x") {
      pax = parsePax(body);
      continue;
    }
    if (flag === "g") continue;
    let name = str(h, 0, 100);
    const magic = str(h, 257, 6);
    if (magic.startsWith("ustar")) {
      const prefix = str(h, 345, 155);
      if (prefix) name = `${prefix}/${name}`;
    }
    if (pax.path) name = pax.path;
    if (longName) name = longName;
    const paxLink = pax.linkpath;
    longName = undefined;
    pax = {};
    name = name.replace(/^\.\//, "").replace(/^\/+/, "");
    const type = flag === "0" || flag === "\0" || flag === "7" ? "file" : flag === "5" ? "dir" : flag === "2" ? "symlink" : "other";
    const entry: TarEntry = { name, type, size, ...(type === "symlink" ? { link: paxLink ?? str(h, 157, 100) } : {}) };
    if (type === "file" && want(name)) entry.data = Buffer.from(body);
    out.push(entry);
  }
  return out;
}

function header(name: string, size: number, type: "0" | "5", mode: number, mtime: number): Buffer {
  const h = Buffer.alloc(512, 0);
  if (Buffer.byteLength(name) > 100) throw new Error(`tar name too long: ${name}`);
  h.write(name, 0, 100, "utf8");
  h.write(`${mode.toString(8).padStart(7, "0")}\0`, 100, 8, "ascii");
  h.write("0000000\0", 108, 8, "ascii");
  h.write("0000000\0", 116, 8, "ascii");
  h.write(`${size.toString(8).padStart(11, "0")}\0`, 124, 12, "ascii");
  h.write(`${Math.floor(mtime).toString(8).padStart(11, "0")}\0`, 136, 12, "ascii");
  h.write("        ", 148, 8, "ascii");
  h.write(type, 156, 1, "ascii");
  h.write("ustar\0", 257, 6, "ascii");
  h.write("00", 263, 2, "ascii");
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, 8, "ascii");
  return h;
}

/** Write a ustar archive (deterministic for a fixed mtime). */
export function writeTar(entries: Array<{ name: string; data?: Buffer | string; type?: "file" | "dir"; mode?: number; mtime?: number }>): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const type = e.type ?? (e.data === undefined ? "dir" : "file");
    const data = type === "file" ? (Buffer.isBuffer(e.data) ? e.data : Buffer.from(e.data ?? "")) : Buffer.alloc(0);
    parts.push(header(e.name, data.length, type === "dir" ? "5" : "0", e.mode ?? (type === "dir" ? 0o755 : 0o644), e.mtime ?? 0));
    parts.push(data);
    const pad = (512 - (data.length % 512)) % 512;
    if (pad) parts.push(Buffer.alloc(pad, 0));
  }
  parts.push(Buffer.alloc(1024, 0));
  return Buffer.concat(parts);
}
