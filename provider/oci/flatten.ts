/**
 * Flattens image layers into one rootfs tar stream without unpacking to disk.
 *
 * Pass 1 decompresses (and verifies) each layer once, into a spool file (`spool.ts`),
 * reads the spool's headers, and decides top layer to bottom for every entry whether it
 * survives (image-spec "Applying Changesets": whiteouts `.wh.<name>`, opaque markers
 * `.wh..wh..opq`, later layers replacing earlier paths). Pass 2 reads the spools bottom
 * to top and pushes the survivors out, so each body is copied once, directories come
 * before their contents, and a hardlink always follows its target.
 *
 * Memory is a few small records per path (the surviving tree's shape), never file data:
 * that is on disk, in the spools, deleted as pass 2 consumes them.
 *
 * Hostile input policy:
 *  - a path or hardlink target escaping the root with `..` refuses the image;
 *  - absolute paths are made relative (GNU tar does the same);
 *  - an entry beneath a symlink or file turns that path into a directory (the symlink is
 *    dropped), so nothing is ever written through a link;
 *  - hardlinks to something not earlier in the same layer are dropped with a warning;
 *  - char/block devices are dropped by default (containers cannot create them anyway);
 *  - entry count and total size are capped.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import { PassThrough } from "node:stream";
import * as path from "node:path";
import { randomBytes } from "node:crypto";
import { OciError } from "./errors";
import { LayerFile, openLayer } from "./layer";
import { SpoolWriter, removeSpool } from "./spool";
import { BufferedTarReader, TAR_END, TarHeader, encodeHeader, padding } from "./tar";
import { BlockWriter } from "./blocks";

export interface FlattenOptions {
  /** Total entries over all layers (default 1,000,000). */
  maxEntries?: number;
  /** Total uncompressed file bytes over all layers (default 64 GiB). */
  maxBytes?: number;
  /** Character/block device nodes: dropped (default), kept, or an error. */
  devices?: "drop" | "keep" | "error";
  /**
   * Where pass 1 spools each layer's uncompressed tar for pass 2: files `<prefix>.layer-N.tar`
   * (default: in the OS temp dir). They take up to the image's uncompressed size and are
   * deleted as pass 2 consumes them (all of them on failure).
   */
  spoolPrefix?: string;
  /**
   * Bytes read, per pass: in "scan" compressed bytes of the sum of layer sizes, in "write"
   * uncompressed (spooled) bytes of the sum of the layers' tar sizes.
   */
  onProgress?: (phase: "scan" | "write", done: number, total: number) => void;
  warn?: (message: string) => void;
}

/**
 * Where pass 2 pushes the rootfs tar. `b` is only valid during the call, or until the
 * returned promise (backpressure) settles.
 */
export type TarOut = (b: Buffer) => Promise<void> | undefined;

const ZEROS = Buffer.alloc(512);

export interface FlattenStats {
  entriesRead: number;
  entriesWritten: number;
  bytesWritten: number;
  warnings: string[];
}

type Kind = "dir" | "nondir";

interface DirMeta {
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  mtime: number;
  xattrs?: Map<string, Buffer>;
}

/** What layers above the one being scanned left at a path. */
interface PathState {
  kind: "dir" | "implied" | "nondir" | "whiteout";
  opaque?: boolean;
  meta?: DirMeta;
  /** The entry currently chosen to emit this directory (moved down to the lowest layer). */
  emitter?: { layer: number; k: number };
}

interface Override {
  name?: string;
  linkname?: string;
  meta?: DirMeta;
}

interface LayerPlan {
  emit: Uint8Array;
  overrides: Map<number, Override>;
  /**
   * Directories that must exist although no entry of theirs is written: the parent of
   * an entry that is not written (hidden by a layer above, or dropped) still existed in
   * that layer, and survives unless the layers above removed it.
   */
  ensure: Map<number, string>;
}

/** Scanned entry (pass 1, current layer only). */
interface Scanned {
  path: string;
  kind: Kind | "whiteout" | "opaque" | "skip";
  isLink?: boolean;
  linkRoot?: number;
  /** A real entry (device, broken hardlink) that is dropped: its parent still exists. */
  dropped?: boolean;
  meta?: DirMeta;
}

const WH = ".wh.";
const OPAQUE = ".wh..wh..opq";

/** Normalises a tar path to a root-relative form ("" is the root). Throws if it escapes. */
export function normalizePath(raw: string, what: string): string {
  const out: string[] = [];
  for (const part of raw.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (!out.length) throw new OciError("HOSTILE_LAYER", `${what}: path '${raw}' escapes the root filesystem; refusing the image`);
      out.pop();
    } else out.push(part);
  }
  return out.join("/");
}

function parentOf(p: string): string {
  const i = p.lastIndexOf("/");
  return i < 0 ? "" : p.slice(0, i);
}

/** Proper ancestors of p, nearest first, excluding the root. */
function* ancestors(p: string): Generator<string> {
  for (let i = p.lastIndexOf("/"); i > 0; i = p.lastIndexOf("/", i - 1)) yield p.slice(0, i);
}

function metaOf(h: TarHeader): DirMeta {
  return { mode: h.mode, uid: h.uid, gid: h.gid, uname: h.uname, gname: h.gname, mtime: h.mtime, xattrs: h.xattrs };
}

function outName(p: string, dir: boolean): string {
  if (p === "") return "./";
  return dir ? `./${p}/` : `./${p}`;
}

/** Layers decompressed at once in pass 1 (2 cores: one zlib thread each, the JS thread parses). */
const SCAN_PARALLEL = 2;

export class Flattener {
  readonly stats: FlattenStats = { entriesRead: 0, entriesWritten: 0, bytesWritten: 0, warnings: [] };
  private readonly plans: Array<LayerPlan | undefined> = [];
  private readonly maxEntries: number;
  private readonly maxBytes: number;
  private totalBytes = 0;
  private readonly total: number;
  private readonly spoolPrefix: string;
  /** Spool files not yet deleted, by layer. */
  private readonly spools: Array<string | undefined> = [];
  private readonly spoolSizes: number[] = [];
  private spoolBytes = 0;

  constructor(private readonly layers: LayerFile[], private readonly opts: FlattenOptions = {}) {
    this.spoolPrefix = opts.spoolPrefix ?? path.join(os.tmpdir(), `pve-lxc-flatten-${process.pid}-${randomBytes(6).toString("hex")}`);
    this.maxEntries = opts.maxEntries ?? 1_000_000;
    this.maxBytes = opts.maxBytes ?? 64 * 1024 ** 3;
    this.total = layers.reduce((s, l) => s + l.size, 0);
  }

  private warn(msg: string): void {
    if (this.stats.warnings.length < 100) this.stats.warnings.push(msg);
    this.opts.warn?.(msg);
  }

  /**
   * The rootfs tar, pass 1 over all layers then pass 2, pushed to `out`: each call's bytes
   * are only valid during the call (or until its promise settles), so `out` copies them
   * (BlockWriter does). Spools are removed whatever happens.
   */
  async writeTo(out: TarOut): Promise<void> {
    try {
      await this.scanAll();
      await this.writeAll(out);
    } finally {
      for (const p of this.spools) if (p) removeSpool(p);
    }
  }

  /** The same tar as fresh 1 MiB chunks, for consumers that pull (extraction). */
  async *tar(): AsyncGenerator<Buffer> {
    const pass = new PassThrough({ highWaterMark: 2 << 20 });
    const w = new BlockWriter(pass, { reuse: false });
    const writing = this.writeTo((b) => w.write(b)).then(
      () => w.end(),
      (err: Error) => {
        pass.destroy(err);
      },
    );
    try {
      for await (const c of pass) yield c as Buffer;
    } finally {
      if (!pass.writableFinished) pass.destroy();
      await writing.catch(() => undefined);
    }
  }

  // ------------------------------------------------------------------ pass 1

  /** Where layer `li`'s uncompressed tar is spooled between the passes. */
  private spoolPath(li: number): string {
    return `${this.spoolPrefix}.layer-${li}.tar`;
  }

  async scanAll(): Promise<void> {
    const state = new Map<string, PathState>();
    let done = 0;
    // Up to SCAN_PARALLEL layers are decompressed at once (on zlib's thread pool, so this
    // uses the other core), largest first: the largest (usually the base) layer would
    // otherwise be decompressed last, alone, on one core. Decisions are still made
    // strictly from the top layer down, each when its scan is done.
    let running = 0;
    let failed = false;
    const waiting: Array<() => void> = [];
    const limited = async (li: number): Promise<Scanned[]> => {
      if (running >= SCAN_PARALLEL) await new Promise<void>((r) => waiting.push(r));
      running++;
      try {
        if (failed) throw new Error("cancelled"); // an earlier layer failed: never seen
        return await this.scanLayer(li, (n) => {
          done += n;
          this.opts.onProgress?.("scan", done, this.total);
        });
      } finally {
        running--;
        waiting.shift()?.();
      }
    };
    const scans: Array<Promise<Scanned[]> | undefined> = [];
    const bySize = this.layers.map((_, li) => li).sort((a, b) => this.layers[b].size - this.layers[a].size || b - a);
    for (const li of bySize) {
      scans[li] = limited(li);
      scans[li]!.catch(() => undefined); // awaited below, in order; no unhandled rejection meanwhile
    }
    try {
      for (let li = this.layers.length - 1; li >= 0; li--) {
        const entries = await scans[li]!;
        scans[li] = undefined; // the scanned records are garbage once decided
        this.plans[li] = this.decideLayer(li, entries, state);
      }
    } catch (err) {
      failed = true; // start nothing more; let running scans finish before their spools go
      await Promise.allSettled(scans.filter((p) => p !== undefined));
      throw err;
    }
  }

  /**
   * Decompresses (and verifies) layer `li` into its spool, then reads the spool's headers
   * (bodies are skipped by seeking). The two steps are separate so that decompression is
   * one stream into a file, with no per-entry work on the way.
   */
  private async scanLayer(li: number, onBytes: (n: number) => void): Promise<Scanned[]> {
    const layer = this.layers[li];
    const spool = new SpoolWriter(this.spoolPath(li));
    this.spools[li] = spool.path;
    try {
      for await (const _ of openLayer(layer, { verify: true, onCompressedBytes: onBytes, spool })) {
        // written to the spool by openLayer
      }
    } finally {
      spool.close();
      this.spoolSizes[li] = spool.size;
      this.spoolBytes += spool.size;
    }
    return this.withSpool(li, (input) => this.scanEntries(layer, input));
  }

  /** Runs `fn` on a tar reader of layer `li`'s spool. */
  private async withSpool<T>(li: number, fn: (input: BufferedTarReader) => Promise<T>, onRead?: (position: number) => void): Promise<T> {
    const fh = await fs.promises.open(this.spools[li]!, "r");
    const read = async (buf: Buffer, off: number, len: number, position: number) => {
      const { bytesRead } = await fh.read(buf, off, len, position);
      onRead?.(position + bytesRead);
      return bytesRead;
    };
    try {
      return await fn(new BufferedTarReader(read, this.spoolSizes[li]));
    } finally {
      await fh.close();
    }
  }

  private async scanEntries(layer: LayerFile, input: BufferedTarReader): Promise<Scanned[]> {
    const what = `layer ${layer.digest}`;
    const out: Scanned[] = [];
    /** Last index so far at each path (hardlink targets resolve against it). */
    const current = new Map<string, number>();
    for (let h = await input.next(); h; h = await input.next()) {
      if (++this.stats.entriesRead > this.maxEntries) {
        throw new OciError("LIMIT_EXCEEDED", `${what}: the image has more than ${this.maxEntries} entries (limit maxEntries); refusing it`);
      }
      if (h.type === "file") {
        this.totalBytes += h.size;
        if (this.totalBytes > this.maxBytes) {
          throw new OciError("LIMIT_EXCEEDED", `${what}: the image's files add up to more than ${this.maxBytes} bytes (limit maxBytes); refusing it`);
        }
      }
      // Linux's PATH_MAX; longer names cannot be created anyway and deep paths would make
      // the per-entry ancestor walks quadratic.
      if (Buffer.byteLength(h.name) > 4096 || Buffer.byteLength(h.linkname) > 4096) {
        throw new OciError("HOSTILE_LAYER", `${what}: an entry name or link target is longer than 4096 bytes ('${h.name.slice(0, 80)}…')`);
      }
      const p = normalizePath(h.name, what);
      const base = p.slice(p.lastIndexOf("/") + 1);
      const k = out.length;
      if (base.startsWith(WH)) {
        if (base === OPAQUE) out.push({ path: parentOf(p), kind: "opaque" });
        else if (base.startsWith(WH + WH)) out.push({ path: p, kind: "skip" }); // other aufs metadata
        else {
          const name = base.slice(WH.length);
          if (name === "" || name === "." || name === "..") {
            this.warn(`${what}: ignoring meaningless whiteout '${h.name}'`);
            out.push({ path: p, kind: "skip" });
          } else {
            const parent = parentOf(p);
            out.push({ path: parent ? `${parent}/${name}` : name, kind: "whiteout" });
          }
        }
        continue;
      }
      if (p === "" && h.type !== "dir") {
        this.warn(`${what}: ignoring non-directory entry for the root ('${h.name}')`);
        out.push({ path: p, kind: "skip" });
        continue;
      }
      if (h.type === "char" || h.type === "block") {
        const policy = this.opts.devices ?? "drop";
        if (policy === "error") throw new OciError("HOSTILE_LAYER", `${what}: device node '${h.name}' is not allowed (option devices)`);
        if (policy === "drop") {
          this.warn(`${what}: dropped device node '${h.name}'`);
          out.push({ path: p, kind: "skip", dropped: true });
          continue;
        }
      }
      const s: Scanned = { path: p, kind: h.type === "dir" ? "dir" : "nondir" };
      if (h.type === "dir") s.meta = metaOf(h);
      if (h.type === "link") {
        const target = normalizePath(h.linkname, `${what}: hardlink '${h.name}'`);
        const ti = current.get(target);
        const t = ti === undefined ? undefined : out[ti];
        if (!t || t.kind !== "nondir") {
          this.warn(`${what}: dropped hardlink '${h.name}' -> '${h.linkname}': the target is not a file earlier in the same layer`);
          out.push({ path: p, kind: "skip", dropped: true });
          continue;
        }
        s.isLink = true;
        s.linkRoot = t.linkRoot ?? ti!;
      }
      current.set(p, k);
      out.push(s);
    }
    return out;
  }

  /** Liveness within the layer, visibility against upper layers, then merge into state. */
  private decideLayer(li: number, entries: Scanned[], state: Map<string, PathState>): LayerPlan {
    const n = entries.length;
    const plan: LayerPlan = { emit: new Uint8Array(n), overrides: new Map(), ensure: new Map() };
    // --- within-layer liveness: the later of two conflicting entries wins.
    const lastAt = new Map<string, number>();
    const lastNondirAt = new Map<string, number>();
    const lastBelow = new Map<string, number>();
    const dirRunStart = new Map<string, number>();
    const runStartOf = new Int32Array(n).fill(-1);
    for (let k = 0; k < n; k++) {
      const e = entries[k];
      if (e.kind === "skip") continue;
      for (const a of ancestors(e.path)) lastBelow.set(a, k);
      if (e.kind === "opaque") {
        if (e.path) lastBelow.set(e.path, k);
        continue;
      }
      if (e.kind === "whiteout") continue;
      lastAt.set(e.path, k);
      if (e.kind === "nondir") {
        lastNondirAt.set(e.path, k);
        dirRunStart.delete(e.path);
      } else {
        if (!dirRunStart.has(e.path)) dirRunStart.set(e.path, k);
        runStartOf[k] = dirRunStart.get(e.path)!;
      }
    }
    const live = new Uint8Array(n);
    for (let k = 0; k < n; k++) {
      const e = entries[k];
      if (e.kind !== "dir" && e.kind !== "nondir") continue;
      if (lastAt.get(e.path) !== k) continue;
      let ok = true;
      for (const a of ancestors(e.path)) {
        if ((lastNondirAt.get(a) ?? -1) > k) {
          ok = false;
          break;
        }
      }
      if (ok && e.kind === "nondir" && (lastBelow.get(e.path) ?? -1) > k) {
        this.warn(`layer ${this.layers[li].digest}: '${e.path}' is replaced by a directory because later entries are beneath it`);
        ok = false;
      }
      if (ok) live[k] = 1;
    }
    // --- visibility against the layers above
    const visible = new Uint8Array(n);
    const emitAt = (k: number, meta?: DirMeta) => {
      plan.emit[k] = 1;
      if (meta) plan.overrides.set(k, { ...plan.overrides.get(k), meta });
    };
    for (let k = 0; k < n; k++) {
      if (!live[k]) continue;
      const e = entries[k];
      let hidden = false;
      for (const a of ancestors(e.path)) {
        const s = state.get(a);
        if (s && (s.kind === "nondir" || s.kind === "whiteout" || s.opaque)) {
          hidden = true;
          break;
        }
      }
      if (!hidden && e.path !== "" && state.get("")?.opaque) hidden = true;
      if (hidden) continue;
      const s = state.get(e.path);
      if (!s) visible[k] = 1;
      else if (s.kind === "implied") visible[k] = e.kind === "dir" ? 1 : 0;
      else if (s.kind === "dir" && e.kind === "dir") {
        // The upper directory's metadata wins, but it is written here, below, so it
        // precedes this layer's contents of the directory.
        visible[k] = 1;
        if (s.emitter) this.plans[s.emitter.layer]!.emit[s.emitter.k] = 0;
      }
      if (!visible[k]) continue;
      if (e.kind === "dir") {
        const start = runStartOf[k] >= 0 ? runStartOf[k] : k;
        const upper = s?.kind === "dir" ? s.meta : undefined;
        const meta = upper ?? (start !== k ? e.meta : undefined);
        emitAt(start, meta);
        if (s?.kind === "dir") s.emitter = { layer: li, k: start };
      } else if (!e.isLink) emitAt(k);
    }
    // --- hardlinks: link to the root if it survives, else the first surviving link
    //     carries the content (at the root's position, so it still precedes the others).
    const groups = new Map<number, number[]>();
    for (let k = 0; k < n; k++) {
      const e = entries[k];
      if (e.isLink && visible[k]) {
        const g = groups.get(e.linkRoot!);
        if (g) g.push(k);
        else groups.set(e.linkRoot!, [k]);
      }
    }
    for (const [root, links] of groups) {
      let carrier = entries[root].path;
      let rest = links;
      if (!visible[root]) {
        carrier = entries[links[0]].path;
        plan.emit[root] = 1;
        plan.overrides.set(root, { name: carrier });
        rest = links.slice(1);
      }
      for (const k of rest) {
        plan.emit[k] = 1;
        plan.overrides.set(k, { linkname: carrier });
      }
    }
    // --- directories implied by entries that are not written
    const dirSurvives = (d: string, k: number): boolean => {
      if ((lastNondirAt.get(d) ?? -1) > k) return false;
      const s = state.get(d);
      if (s && (s.kind === "nondir" || s.kind === "whiteout")) return false;
      if (state.get("")?.opaque) return false;
      for (const a of ancestors(d)) {
        if ((lastNondirAt.get(a) ?? -1) > k) return false;
        const sa = state.get(a);
        if (sa && (sa.kind === "nondir" || sa.kind === "whiteout" || sa.opaque)) return false;
      }
      return true;
    };
    for (let k = 0; k < n; k++) {
      if (plan.emit[k]) continue;
      const e = entries[k];
      // Whiteout markers imply nothing (as in umoci and PVE, which never extract them);
      // Docker and containerd would create the marker's directory, which only matters
      // for markers in directories that do not otherwise exist.
      if (e.kind !== "dir" && e.kind !== "nondir" && !e.dropped) continue;
      const d = parentOf(e.path);
      if (d !== "" && dirSurvives(d, k)) plan.ensure.set(k, d);
    }
    // --- merge this layer into the state seen by the layers below
    for (let k = 0; k < n; k++) {
      const e = entries[k];
      if (e.kind === "skip") continue;
      if ((e.kind === "dir" || e.kind === "nondir") && !live[k]) continue;
      const s = state.get(e.path);
      if (e.kind === "opaque") {
        if (!s) state.set(e.path, { kind: "implied", opaque: true });
        else if (s.kind === "dir" || s.kind === "implied") s.opaque = true;
      } else if (e.kind === "whiteout" || e.kind === "nondir") {
        if (!s) state.set(e.path, { kind: e.kind });
        else if (s.kind === "dir" || s.kind === "implied") s.opaque = true;
      } else if (e.kind === "dir") {
        if (!s) state.set(e.path, { kind: "dir", meta: e.meta, emitter: visible[k] ? { layer: li, k: runStartOf[k] >= 0 ? runStartOf[k] : k } : undefined });
        else if (s.kind === "implied") {
          s.kind = "dir";
          s.meta = e.meta;
          s.emitter = visible[k] ? { layer: li, k: runStartOf[k] >= 0 ? runStartOf[k] : k } : undefined;
        }
      }
      for (const a of ancestors(e.path)) {
        if (!state.has(a)) state.set(a, { kind: "implied" });
      }
    }
    return plan;
  }

  // ------------------------------------------------------------------ pass 2

  private async writeAll(out: TarOut): Promise<void> {
    const emittedDirs = new Set<string>([""]);
    const emittedNondirs = new Set<string>();
    let done = 0;
    this.opts.onProgress?.("write", 0, this.spoolBytes);
    for (let li = 0; li < this.layers.length; li++) {
      const spool = this.spools[li]!;
      const before = done;
      const progress = (position: number) => this.opts.onProgress?.("write", before + position, this.spoolBytes);
      await this.withSpool(li, (input) => this.writeLayer(li, input, out, emittedDirs, emittedNondirs), progress);
      done = before + this.spoolSizes[li];
      removeSpool(spool);
      this.spools[li] = undefined;
      this.plans[li] = undefined; // written: only the emitted-path sets are still needed
    }
    const p = out(TAR_END);
    if (p) await p;
  }

  /** One layer's survivors (pass 2), as decided for it in pass 1. */
  private async writeLayer(li: number, input: BufferedTarReader, out: TarOut, emittedDirs: Set<string>, emittedNondirs: Set<string>): Promise<void> {
    const layer = this.layers[li];
    const plan = this.plans[li]!;
    let k = -1;
    for (let h = await input.next(); h; h = await input.next()) {
      k++;
      if (k >= plan.emit.length) break; // reported below
      let p: Promise<void> | undefined;
      if (plan.emit[k]) p = this.writeEntry(h, input, plan.overrides.get(k), layer, out, emittedDirs, emittedNondirs);
      else {
        const d = plan.ensure.get(k);
        if (d !== undefined && !emittedDirs.has(d)) p = this.ensureDirs(d, true, layer, out, emittedDirs, emittedNondirs);
      }
      if (p) await p;
    }
    if (k + 1 !== plan.emit.length) {
      throw new OciError("HOSTILE_LAYER", `layer ${layer.digest} changed between the two passes (${plan.emit.length} entries, then ${k + 1})`);
    }
  }

  /** Header and body of one surviving entry; a promise only when `out` or the input had to wait. */
  private writeEntry(h: TarHeader, input: BufferedTarReader, ov: Override | undefined, layer: LayerFile, out: TarOut, dirs: Set<string>, nondirs: Set<string>): Promise<void> | undefined {
    const what = `layer ${layer.digest}`;
    const p = ov?.name ?? normalizePath(h.name, what);
    const isDir = h.type === "dir";
    const waitDirs = this.ensureDirs(p, false, layer, out, dirs, nondirs);
    const meta = ov?.meta;
    const hdr: TarHeader = {
      ...h,
      ...(meta ?? {}),
      name: outName(p, isDir),
      xattrs: meta ? meta.xattrs : h.xattrs,
    };
    if (h.type === "link") {
      const target = ov?.linkname ?? normalizePath(h.linkname, what);
      if (!nondirs.has(target)) throw new OciError("HOSTILE_LAYER", `${what}: hardlink '${p}' -> '${target}' whose target was not written`);
      hdr.linkname = outName(target, false);
    }
    if (isDir) {
      dirs.add(p);
      nondirs.delete(p);
    } else {
      if (dirs.has(p)) throw new OciError("HOSTILE_LAYER", `${what}: '${p}' replaces a directory already written`);
      nondirs.add(p);
    }
    if (h.type !== "file" && !waitDirs) return out(this.header(hdr));
    return this.writeFile(h, hdr, p, input, out, waitDirs, what);
  }

  private async writeFile(h: TarHeader, hdr: TarHeader, p: string, input: BufferedTarReader, out: TarOut, waitDirs: Promise<void> | undefined, what: string): Promise<void> {
    if (waitDirs) await waitDirs;
    const w = out(this.header(hdr));
    if (w) await w;
    if (h.type !== "file") return;
    const n = await input.copyBody(out);
    if (n !== h.size) throw new OciError("HOSTILE_LAYER", `${what}: '${p}' body has ${n} bytes, header says ${h.size}`);
    this.stats.bytesWritten += n;
    const pad = padding(n);
    if (pad) {
      const wp = out(ZEROS.subarray(0, pad));
      if (wp) await wp;
    }
  }

  /**
   * Writes default directories (0755 root) for missing ancestors of `p` (and `p` itself
   * when `self`). An ancestor that is not a directory would mean writing through a link.
   */
  private ensureDirs(p: string, self: boolean, layer: LayerFile, out: TarOut, dirs: Set<string>, nondirs: Set<string>): Promise<void> | undefined {
    const missing: string[] = [];
    for (const a of self ? [p, ...ancestors(p)] : ancestors(p)) {
      if (dirs.has(a)) break;
      if (nondirs.has(a)) throw new OciError("HOSTILE_LAYER", `layer ${layer.digest}: '${p}' would be written beneath non-directory '${a}'`);
      missing.push(a);
    }
    if (!missing.length) return undefined;
    const headers: Buffer[] = [];
    for (let i = missing.length - 1; i >= 0; i--) {
      dirs.add(missing[i]);
      headers.push(this.header({ name: outName(missing[i], true), type: "dir", mode: 0o755, uid: 0, gid: 0, uname: "", gname: "", size: 0, mtime: 0, linkname: "", devmajor: 0, devminor: 0 }));
    }
    return out(headers.length === 1 ? headers[0] : Buffer.concat(headers));
  }

  private header(h: TarHeader): Buffer {
    this.stats.entriesWritten++;
    return encodeHeader(h);
  }
}
