/**
 * `pve-lxc oci` — build PVE container templates and runtime bundles from OCI images.
 *
 *   pve-lxc oci template SOURCE --out FILE [--format rootfs|oci-archive] [--compression gzip|zstd] [--platform os/arch[/variant]]
 *   pve-lxc oci bundle SOURCE DIR [--platform ...]
 *   pve-lxc oci inspect SOURCE [--platform ...]
 *
 * SOURCE: docker://REF, REF, oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REF].
 * Passwords are read from stdin (--password-stdin) or PVE_LXC_OCI_PASSWORD, never argv.
 */
import { parseArgs } from "node:util";
import type { CliCommand } from "../main";
import { OciError, buildBundle, buildTemplate, resolveImage } from "../../oci";
import type { ImageOptions, ProgressEvent } from "../../oci";

const USAGE = `Usage:
  pve-lxc oci template SOURCE --out FILE [--format rootfs|oci-archive] [--compression gzip|zstd] [--platform os/arch[/variant]]
  pve-lxc oci bundle SOURCE DIR [--platform os/arch[/variant]] [--hostname NAME] [--memory BYTES] [--cpus N]
  pve-lxc oci inspect SOURCE [--platform os/arch[/variant]]

SOURCE is docker://REF, a bare REF (nginx, ghcr.io/org/app:1), oci:DIR[:TAG],
oci-archive:FILE[:TAG] or docker-archive:FILE[:REF].

Registry options:
  --username USER         with --password-stdin or PVE_LXC_OCI_PASSWORD in the environment
  --password-stdin        read the password from standard input
  --docker-config PATH    docker config.json (default $DOCKER_CONFIG or ~/.docker/config.json)
  --tls-ca FILE           extra CA certificate(s) to trust (PEM)
  --tls-insecure          do not verify the registry's certificate
  --plain-http            use HTTP (loopback registries fall back to it by themselves)
Other:
  --cache-dir DIR         blob and output cache (default ~/.cache/pulumi-proxmox-lxc/oci)
  --quiet                 no progress on stderr
  --json                  print the result as JSON`;

const OPTIONS = {
  out: { type: "string" },
  format: { type: "string" },
  compression: { type: "string" },
  platform: { type: "string" },
  username: { type: "string" },
  "password-stdin": { type: "boolean" },
  "docker-config": { type: "string" },
  "tls-ca": { type: "string" },
  "tls-insecure": { type: "boolean" },
  "plain-http": { type: "boolean" },
  "cache-dir": { type: "string" },
  hostname: { type: "string" },
  memory: { type: "string" },
  cpus: { type: "string" },
  quiet: { type: "boolean" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

class UsageError extends Error {}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8").replace(/\r?\n$/, "");
}

type Values = ReturnType<typeof parse>["values"];
function parse(argv: string[]) {
  return parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
}

async function imageOptions(v: Values): Promise<ImageOptions> {
  const opts: ImageOptions = {
    platform: v.platform,
    dockerConfig: v["docker-config"],
    cacheDir: v["cache-dir"],
    plainHttp: v["plain-http"] ? true : undefined,
  };
  if (v["tls-ca"] || v["tls-insecure"]) opts.tls = { caFile: v["tls-ca"], insecureSkipVerify: !!v["tls-insecure"] };
  if (v["password-stdin"] && !v.username) throw new UsageError("--password-stdin needs --username");
  if (v.username) {
    const password = v["password-stdin"] ? await readStdin() : process.env.PVE_LXC_OCI_PASSWORD;
    if (!password) throw new UsageError("--username needs a password: pipe it to --password-stdin or set PVE_LXC_OCI_PASSWORD");
    opts.credentials = { username: v.username, password };
  }
  return opts;
}

function progressPrinter(quiet: boolean | undefined): ((e: ProgressEvent) => void) | undefined {
  if (quiet) return undefined;
  let lastPhase = "";
  let lastPct = -1;
  const tty = process.stderr.isTTY;
  return (e) => {
    const pct = e.bytesTotal ? Math.floor((e.bytesDone / e.bytesTotal) * 100) : 100;
    if (e.phase === lastPhase && (!tty || pct === lastPct)) return;
    if (tty && lastPhase && e.phase !== lastPhase) process.stderr.write("\n");
    lastPhase = e.phase;
    lastPct = pct;
    const mb = (n: number) => (n / 1048576).toFixed(1);
    const text = e.phase === "resolve" ? "resolving image" : e.phase === "done" ? "done" : `${e.phase} ${mb(e.bytesDone)}/${mb(e.bytesTotal)} MiB (${pct}%)`;
    process.stderr.write(tty ? `\r${text}` : `${text}\n`);
    if (tty && e.phase === "done") process.stderr.write("\n");
  };
}

function positiveNumber(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${flag} must be a positive number, got '${v}'`);
  return n;
}

async function runCommand(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parse(argv);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { values: v, positionals } = parsed;
  const [sub, ...args] = positionals;
  if (v.help || !sub) {
    console.log(USAGE);
    return v.help ? 0 : 2;
  }
  const print = (human: string[], json: unknown) => console.log(v.json ? JSON.stringify(json, null, 2) : human.join("\n"));
  switch (sub) {
    case "template": {
      if (args.length !== 1) throw new UsageError("template takes exactly one SOURCE");
      if (!v.out) throw new UsageError("template needs --out FILE (e.g. --out nginx.tar.gz)");
      const format = v.format ?? "rootfs";
      if (format !== "rootfs" && format !== "oci-archive") throw new UsageError(`--format must be rootfs or oci-archive, got '${format}'`);
      const compression = v.compression;
      if (compression !== undefined && compression !== "gzip" && compression !== "zstd") throw new UsageError(`--compression must be gzip or zstd, got '${compression}'`);
      const r = await buildTemplate({ ...(await imageOptions(v)), source: args[0], outFile: v.out, format, compression, onProgress: progressPrinter(v.quiet) });
      print(
        [`${r.file}`, `  size ${r.size}  sha256 ${r.sha256}`, `  image ${r.manifestDigest} (${r.platform})${r.cached ? "  [cached]" : ""}`, `  suggested name ${r.fileName}`, ...r.warnings.map((w) => `  warning: ${w}`)],
        r,
      );
      return 0;
    }
    case "bundle": {
      if (args.length !== 2) throw new UsageError("bundle takes SOURCE and DIR");
      const r = await buildBundle({
        ...(await imageOptions(v)),
        source: args[0],
        dir: args[1],
        hostname: v.hostname,
        memoryBytes: positiveNumber(v.memory, "--memory"),
        cpus: positiveNumber(v.cpus, "--cpus"),
        onProgress: progressPrinter(v.quiet),
      });
      print([`${r.dir}`, `  run: runc run --bundle ${r.dir} <id>`, `  image ${r.manifestDigest} (${r.platform})`, ...r.warnings.map((w) => `  warning: ${w}`)], r);
      return 0;
    }
    case "inspect": {
      if (args.length !== 1) throw new UsageError("inspect takes exactly one SOURCE");
      const r = await resolveImage(args[0], await imageOptions(v));
      console.log(JSON.stringify(r, null, 2));
      return 0;
    }
    default:
      throw new UsageError(`unknown subcommand '${sub}' (template, bundle or inspect)`);
  }
}

const command: CliCommand = {
  summary: "Build PVE templates (rootfs or OCI archive) and runc bundles from OCI images",
  async run(argv) {
    try {
      return await runCommand(argv);
    } catch (err) {
      if (err instanceof UsageError) {
        console.error(`pve-lxc oci: ${err.message}\n\n${USAGE}`);
        return 2;
      }
      if (err instanceof OciError) {
        console.error(`pve-lxc oci: ${err.message}`);
        return 1;
      }
      throw err;
    }
  },
};

export default command;

