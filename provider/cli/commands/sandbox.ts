/**
 * `pve-lxc sandbox` — run the Proxmox VE-compatible sandbox API server in the foreground
 * until SIGINT/SIGTERM. With `--state DIR` the cluster persists across runs (so `pulumi up`
 * and a later `pulumi destroy` see the same containers); `--connection-file FILE` writes
 * `{endpoint, apiToken, tlsFingerprint, username, password, nodes, ...}` for tools and tests.
 */
import type { CliCommand } from "../main";
import { parseStorageSpec, type StorageSpec } from "../../../sandbox/model/storage/storages";

const HELP = `Usage: pve-lxc sandbox [options]

Run a local Proxmox VE-compatible API server (HTTPS, self-signed certificate).

Options:
  --port N                 listen port (default 8006; 0 = random free port)
  --host ADDR              listen address (default 127.0.0.1)
  --state DIR              keep the cluster (config, volumes, tasks, certificate) in DIR
  --nodes a,b              node names (default pve1)
  --pve-version 9.1|8.4    API schema and behaviour to emulate (default 9.1)
  --storage NAME:TYPE[:CONTENT,...]
                           a storage of every node (repeatable; replaces the default
                           local/local-lvm/local-zfs/shared-nfs set). TYPE: dir, btrfs,
                           lvmthin, zfspool, nfs; CONTENT e.g. images,rootdir,vztmpl
                           (default: what a fresh storage.cfg entry of that type lists)
  --connection-file FILE   write the connection JSON here (mode 0600)
  --task-duration-ms N     simulated duration of task work (default 1000)
  --auth-failure-delay-ms N  delay of every 401, as PVE (default 3000)
  --log-level LEVEL        fatal|error|warn|info|debug|trace (default info; debug = access log)
  -h, --help               show this help
`;

interface Parsed {
  port?: number;
  host?: string;
  stateDir?: string;
  nodes?: string[];
  pveVersion?: "9.1" | "8.4";
  storages?: StorageSpec[];
  connectionFile?: string;
  taskDurationMs?: number;
  authFailureDelayMs?: number;
  logLevel?: string;
  help?: boolean;
}

export function parseSandboxArgs(argv: string[]): Parsed {
  const out: Parsed = {};
  const num = (flag: string, v: string | undefined): number => {
    if (v === undefined || !/^\d+$/.test(v)) throw new Error(`${flag} needs a non-negative integer (got '${v ?? ""}')`);
    return Number(v);
  };
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i];
    let value: string | undefined;
    const eq = arg.indexOf("=");
    if (arg.startsWith("--") && eq > 0) {
      value = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    const next = () => {
      if (value !== undefined) return value;
      const v = argv[++i];
      if (v === undefined || v.startsWith("--")) throw new Error(`${arg} needs a value`);
      return v;
    };
    switch (arg) {
      case "-h":
      case "--help":
        out.help = true;
        break;
      case "--port":
        out.port = num(arg, next());
        if (out.port > 65535) throw new Error("--port must be between 0 and 65535");
        break;
      case "--host":
        out.host = next();
        break;
      case "--state":
        out.stateDir = next();
        break;
      case "--nodes": {
        const nodes = next().split(",").map((s) => s.trim()).filter(Boolean);
        const bad = nodes.find((n) => !/^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/i.test(n));
        if (!nodes.length || bad !== undefined) throw new Error(`--nodes needs a comma list of node names (bad: '${bad ?? ""}')`);
        out.nodes = nodes;
        break;
      }
      case "--pve-version": {
        const v = next();
        if (v !== "9.1" && v !== "8.4") throw new Error(`--pve-version must be 9.1 or 8.4 (got '${v}')`);
        out.pveVersion = v;
        break;
      }
      case "--storage": {
        const spec = parseStorageSpec(next());
        if (out.storages?.some((s) => s.storage === spec.storage)) throw new Error(`--storage '${spec.storage}' given twice`);
        (out.storages ??= []).push(spec);
        break;
      }
      case "--connection-file":
        out.connectionFile = next();
        break;
      case "--task-duration-ms":
        out.taskDurationMs = num(arg, next());
        break;
      case "--auth-failure-delay-ms":
        out.authFailureDelayMs = num(arg, next());
        break;
      case "--log-level":
        out.logLevel = next();
        break;
      default:
        throw new Error(`unknown option '${arg}'`);
    }
  }
  return out;
}

const command: CliCommand = {
  summary: "Run a local Proxmox VE-compatible API server (sandbox) for tests and demos",
  async run(argv) {
    let args: Parsed;
    try {
      args = parseSandboxArgs(argv);
    } catch (e) {
      console.error(`pve-lxc sandbox: ${(e as Error).message}\n\n${HELP}`);
      return 2;
    }
    if (args.help) {
      console.log(HELP);
      return 0;
    }
    const { configureLogging } = await import("../../logging");
    const logger = configureLogging({ level: args.logLevel, file: process.env.PULUMI_PROXMOX_LOG_FILE || "-", pretty: process.env.PULUMI_PROXMOX_LOG_PRETTY !== "0" });
    const { startSandbox } = await import("../../../sandbox");
    const sb = await startSandbox({
      port: args.port, host: args.host, stateDir: args.stateDir, nodes: args.nodes, pveVersion: args.pveVersion, storages: args.storages,
      connectionFile: args.connectionFile, taskDurationMs: args.taskDurationMs, authFailureDelayMs: args.authFailureDelayMs, logger,
    });
    // Connection details on stdout (the logger writes to stderr); secrets only to the file.
    console.log(`Proxmox VE ${sb.pveVersion} sandbox listening on ${sb.endpoint}`);
    console.log(`  nodes:           ${sb.nodes.join(", ")}`);
    console.log(`  TLS fingerprint: ${sb.tlsFingerprint}`);
    console.log(`  state:           ${sb.stateDir ?? "(memory only)"}`);
    if (args.connectionFile) console.log(`  connection file: ${args.connectionFile} (API token, root password, admin secret)`);
    else console.log(`  API token:       ${sb.apiToken}\n  root@pam password: ${sb.password}`);
    await new Promise<void>((resolve) => {
      const onSignal = () => resolve();
      process.once("SIGINT", onSignal);
      process.once("SIGTERM", onSignal);
    });
    await sb.stop();
    return 0;
  },
};

export default command;
