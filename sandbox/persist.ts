/**
 * Atomic file writes for the `--state DIR` mode: write a temp file next to the target and
 * rename it, so a crash or a concurrent reader never sees a half-written state file.
 */
import * as fs from "node:fs";
import * as path from "node:path";

let seq = 0;

export function writeFileAtomic(file: string, data: string | Buffer, mode?: number): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp.${process.pid}.${seq++}`;
  fs.writeFileSync(tmp, data, mode !== undefined ? { mode } : undefined);
  fs.renameSync(tmp, file);
}

export function readJson<T>(file: string): T | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, "utf8")) as T;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new Error(`sandbox state file '${file}' is unreadable: ${(e as Error).message}`);
  }
}
