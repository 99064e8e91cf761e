/**
 * Warnings as the engine's own diagnostics.
 *
 * The engine starts every provider plugin with the address of its host service as the
 * first argument; `@pulumi/pulumi/cmd/dynamic-provider` reads it and does nothing with it.
 * That service's `Log` RPC is what `pulumi.log.warn` uses in a program: a warning sent
 * there is shown and counted as a warning ("warning: …" in the Diagnostics section, a
 * `diagnosticEvent` with severity `warning` in `--json` output), while a line on the
 * provider's stderr is only shown as plain output.
 *
 * Outside a provider host (tests in process, the `pve-lxc` CLI), or when the RPC fails, the
 * warning goes to stderr as a `[proxmox] … warning:` line instead, so it is never lost.
 */
import * as path from "node:path";
import { scrubSecrets } from "./secrets";

interface EngineLink {
  log(message: string): Promise<void>;
}

let link: EngineLink | null | undefined;

/** The engine's address when this process is a dynamic-provider host, else undefined. */
export function engineAddress(argv: readonly string[] = process.argv): string | undefined {
  const script = argv[1] ?? "";
  const addr = argv[2] ?? "";
  if (!/dynamic-provider/.test(script.split(path.sep).join("/"))) return undefined;
  return /^[\w.[\]:-]+:\d+$/.test(addr) ? addr : undefined;
}

function connect(addr: string): EngineLink | null {
  try {
    // The program's own @pulumi/pulumi is the one running this host; its generated client
    // and its @grpc/grpc-js (wherever npm put it) are what it uses to talk to the engine.
    const pulumiDir = path.dirname(require.resolve("@pulumi/pulumi/package.json"));
    const grpc = require(require.resolve("@grpc/grpc-js", { paths: [pulumiDir] })) as typeof import("@grpc/grpc-js");
    const engrpc = require("@pulumi/pulumi/proto/engine_grpc_pb") as typeof import("@pulumi/pulumi/proto/engine_grpc_pb");
    const engpb = require("@pulumi/pulumi/proto/engine_pb") as typeof import("@pulumi/pulumi/proto/engine_pb");
    const client = new engrpc.EngineClient(addr, grpc.credentials.createInsecure());
    return {
      log: (message) =>
        new Promise<void>((resolve, reject) => {
          const req = new engpb.LogRequest();
          req.setSeverity(engpb.LogSeverity.WARNING);
          req.setMessage(message);
          client.log(req, new grpc.Metadata(), { deadline: Date.now() + 5000 }, (err: Error | null) => (err ? reject(err) : resolve()));
        }),
    };
  } catch {
    return null;
  }
}

function engine(): EngineLink | null {
  if (link === undefined) {
    const addr = engineAddress();
    link = addr ? connect(addr) : null;
  }
  return link;
}

/**
 * Show `message` as a warning about `who` (e.g. "Container web-1"): an engine warning in a
 * provider host, else a stderr line. Secrets registered with the logger are scrubbed first.
 */
export async function warnUser(who: string, message: string, write: (line: string) => void = (l) => process.stderr.write(l)): Promise<void> {
  const text = scrubSecrets(`${who}: ${message}`);
  const e = engine();
  if (e) {
    try {
      await e.log(text);
      return;
    } catch {
      // fall through: the line is better than nothing
    }
  }
  write(`[proxmox] ${scrubSecrets(who)}: warning: ${scrubSecrets(message)}\n`);
}

/** Tests: forget the connection (or pretend to be in a provider host with `fake`). */
export function resetEngineLink(fake?: EngineLink | null): void {
  link = fake;
}
