#!/usr/bin/env node
/**
 * `pve-lxc` — one CLI with subcommands. Each subcommand lives in its own module under
 * ./commands and is loaded only when invoked, so `pve-lxc oci ...` never pays for the
 * sandbox's imports and vice versa.
 *
 * A command module exports `{ summary: string; run(argv: string[]): Promise<number> }`;
 * `run` returns the process exit code.
 */
export interface CliCommand {
  summary: string;
  run(argv: string[]): Promise<number>;
}

/** Subcommand name -> module path (relative to this file). Add new commands here. */
const COMMANDS: Record<string, string> = {
  sandbox: "./commands/sandbox",
  oci: "./commands/oci",
  import: "./commands/import",
  report: "./commands/report",
};

function loadCommand(name: string): CliCommand | undefined {
  const modPath = COMMANDS[name];
  if (!modPath) return undefined;
  try {
    return require(modPath).default as CliCommand;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "MODULE_NOT_FOUND" && String(err).includes(modPath.slice(2))) {
      return undefined;
    }
    throw err;
  }
}

function usage(): string {
  const lines = ["Usage: pve-lxc <command> [options]", "", "Commands:"];
  for (const name of Object.keys(COMMANDS)) {
    const cmd = loadCommand(name);
    if (cmd) lines.push(`  ${name.padEnd(10)} ${cmd.summary}`);
  }
  lines.push("", "Run `pve-lxc <command> --help` for a command's options.");
  return lines.join("\n");
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    console.log(usage());
    return name ? 0 : 2;
  }
  const cmd = loadCommand(name);
  if (!cmd) {
    console.error(`pve-lxc: unknown command '${name}'.\n\n${usage()}`);
    return 2;
  }
  return cmd.run(rest);
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      console.error(`pve-lxc: ${err instanceof Error ? err.message : String(err)}`);
      process.exitCode = 1;
    },
  );
}
