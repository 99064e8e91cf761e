/**
 * Progress users can see during `pulumi up`. The engine shows every line a provider plugin
 * writes to stderr as a message in the CLI output (verified with Pulumi v3.248.0 in
 * test/e2e, see docs/logging.md); unlike an engine warning (./engineLog) it is not counted
 * as a diagnostic, which suits progress. So progress goes to stderr, throttled, one line per
 * step, and to the log file at info level.
 *
 * Set PULUMI_PROXMOX_PROGRESS=0 to silence the stderr lines.
 */
import { getLogger, type Logger } from "./index";

export interface ProgressReporter {
  /** Report progress; printed at most once per interval unless `force`. */
  update(message: string, fields?: Record<string, unknown>, force?: boolean): void;
  /** Final line, always printed. */
  done(message: string, fields?: Record<string, unknown>): void;
}

const enabled = () => process.env.PULUMI_PROXMOX_PROGRESS !== "0";

export function createProgress(label: string, opts: { intervalMs?: number; write?: (line: string) => void; logger?: Logger } = {}): ProgressReporter {
  const interval = opts.intervalMs ?? 2000;
  const write = opts.write ?? ((line: string) => enabled() && process.stderr.write(line));
  let last = 0;
  const emit = (message: string, fields?: Record<string, unknown>) => {
    last = Date.now();
    write(`[proxmox] ${label}: ${message}\n`);
    (opts.logger ?? getLogger()).info({ progress: label, ...(fields ?? {}) }, `${label}: ${message}`);
  };
  return {
    update(message, fields, force) {
      if (force || Date.now() - last >= interval) emit(message, fields);
    },
    done(message, fields) {
      emit(message, fields);
    },
  };
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];
export function formatBytes(n: number): string {
  let i = 0;
  let v = n;
  while (v >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${UNITS[i]}`;
}
