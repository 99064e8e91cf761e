/**
 * One logging design for provider, client, sandbox and CLI, built on pino.
 *
 * - JSON lines by default. A dynamic provider's stdout is not a user log, so the default
 *   destination is a per-user file; `PULUMI_PROXMOX_LOG_FILE=-` (or `stderr`) sends lines
 *   to stderr instead.
 * - Level: `configureLogging({level})` (the provider passes `proxmox:logLevel`), else
 *   `PULUMI_PROXMOX_LOG_LEVEL`, else `info`.
 * - Secrets: pino's `redact` masks secret-named fields, and a final `streamWrite` hook
 *   scrubs registered secret values and credential shapes from the serialized line, so a
 *   secret nested under an innocent key is still caught.
 * - Writes are asynchronous and flushed synchronously on process exit.
 *
 * Usage: `const log = getLogger().child({ component: "client" }); log.debug({...}, "msg")`.
 */
import pino from "pino";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Writable } from "node:stream";
import { scrubSecrets, SECRET_KEYS, REDACTED } from "./secrets";

export { registerSecret, scrubSecrets, redactObject, clearRegisteredSecrets, REDACTED, SECRET_KEYS } from "./secrets";
export { metrics, MetricsRegistry } from "./metrics";

export type Logger = pino.Logger;
export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";

export interface LoggingOptions {
  level?: string;
  /** A file path, "-"/"stderr" for stderr, "stdout" for stdout. */
  file?: string;
  /** Human-readable lines instead of JSON. */
  pretty?: boolean;
  /** Fixed fields on every line (e.g. `{ component: "sandbox" }`). */
  base?: Record<string, unknown>;
}

const LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

/** pino redact paths: top-level and one or two levels deep, for every secret key. */
const REDACT_PATHS = SECRET_KEYS.flatMap((k) => {
  const key = /^[A-Za-z_$][\w$]*$/.test(k) ? k : `["${k}"]`;
  const dot = key.startsWith("[") ? "" : ".";
  return [key, `*${dot}${key}`, `*.*${dot}${key}`];
});

export function defaultLogFile(): string {
  const stateHome = process.env.XDG_STATE_HOME || path.join(os.homedir(), ".local", "state");
  return path.join(stateHome, "pulumi-proxmox-lxc", "provider.log");
}

function resolveLevel(level?: string): LogLevel {
  const candidate = (level || process.env.PULUMI_PROXMOX_LOG_LEVEL || "info").toLowerCase();
  if (!LEVELS.includes(candidate)) {
    throw new Error(
      `Invalid log level '${candidate}' (from proxmox:logLevel or PULUMI_PROXMOX_LOG_LEVEL). Use one of: ${LEVELS.join(", ")}.`,
    );
  }
  return candidate as LogLevel;
}

interface Sink {
  stream: pino.DestinationStream;
  flushSync(): void;
}

function openSink(file: string): Sink {
  if (file === "-" || file === "stderr") {
    const d = pino.destination({ dest: 2, sync: true });
    return { stream: d, flushSync: () => undefined };
  }
  if (file === "stdout") {
    const d = pino.destination({ dest: 1, sync: true });
    return { stream: d, flushSync: () => undefined };
  }
  fs.mkdirSync(path.dirname(file), { recursive: true });
  // Open synchronously: an asynchronous open is not done yet if the process dies in the
  // same tick, and then nothing at all could be flushed.
  const fd = fs.openSync(file, "a", 0o600);
  // Synchronous writes: each line is in the kernel when the call returns, so a provider host
  // killed right after an operation loses nothing, and nothing needs flushing. (SonicBoom's
  // flushSync also fsyncs: once per operation it blocked the provider host's event loop,
  // 7.7 % of its time in a 30-container `up`, bench/pulumi-up.)
  const d = pino.destination({ dest: fd, sync: true });
  return { stream: d, flushSync: () => undefined };
}

function prettyStream(target: pino.DestinationStream): pino.DestinationStream {
  // Synchronous pino-pretty (no worker thread): a provider process may exit right after.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const pretty = require("pino-pretty") as (o: Record<string, unknown>) => pino.DestinationStream;
  return pretty({ destination: target, sync: true, colorize: false, translateTime: "SYS:HH:MM:ss.l", ignore: "pid,hostname" });
}

let current: { logger: Logger; sink?: Sink } | undefined;
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // 'exit' handlers must be synchronous: flush what SonicBoom still buffers.
  process.on("exit", () => flushLogs());
}

function build(opts: LoggingOptions, stream: pino.DestinationStream): Logger {
  return pino(
    {
      level: resolveLevel(opts.level),
      base: { pid: process.pid, ...(opts.base ?? {}) },
      redact: { paths: REDACT_PATHS, censor: REDACTED },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      hooks: { streamWrite: (s: string) => scrubSecrets(s) },
    },
    stream,
  );
}

/** (Re)configure the process-wide logger. Safe to call more than once. */
export function configureLogging(opts: LoggingOptions = {}): Logger {
  const file = opts.file || process.env.PULUMI_PROXMOX_LOG_FILE || defaultLogFile();
  const pretty = opts.pretty ?? process.env.PULUMI_PROXMOX_LOG_PRETTY === "1";
  const previous = current;
  const sink = openSink(file);
  const logger = build(opts, pretty ? prettyStream(sink.stream) : sink.stream);
  current = { logger, sink };
  installExitHook();
  if (previous?.sink && previous.sink !== sink) previous.sink.flushSync();
  return logger;
}

/** The process-wide logger, created from environment defaults on first use. */
export function getLogger(): Logger {
  if (!current) configureLogging();
  return current!.logger;
}

/** Flush buffered lines synchronously (done automatically on exit). */
export function flushLogs(): void {
  current?.sink?.flushSync();
}

export interface CapturedLogs {
  logger: Logger;
  /** Parsed JSON lines, in order. */
  records: Array<Record<string, any>>;
  /** All lines as raw text (what would have reached a file). */
  text(): string;
  /** Restore the previous process-wide logger (only if installed with `install: true`). */
  restore(): void;
}

/**
 * A logger that keeps lines in memory, for tests. With `install: true` it also becomes
 * the process-wide logger returned by getLogger() until `restore()`.
 */
export function captureLogger(opts: { level?: string; install?: boolean; base?: Record<string, unknown> } = {}): CapturedLogs {
  const raw: string[] = [];
  const records: Array<Record<string, any>> = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      const s = chunk.toString();
      raw.push(s);
      for (const line of s.split("\n")) if (line.trim()) records.push(JSON.parse(line));
      cb();
    },
  });
  const logger = build({ level: opts.level ?? "trace", base: opts.base }, stream as unknown as pino.DestinationStream);
  const previous = current;
  if (opts.install) current = { logger };
  return {
    logger,
    records,
    text: () => raw.join(""),
    restore: () => {
      if (opts.install) current = previous;
    },
  };
}
