/**
 * Test harness: real `pulumi` commands against a throwaway TypeScript project.
 *
 *   const stack = await PulumiStack.create({ programSource: `import { Noop } from "pulumi-proxmox-lxc"; ...` });
 *   const up = await stack.up();                 // parsed `pulumi up --json`
 *   expect(hasNoChanges(await stack.preview())).to.equal(true);
 *   await stack.destroy(); await stack.remove();
 *
 * Isolation: every stack gets its own folder under test/.tmp/ (git-ignored) with a file
 * backend (PULUMI_BACKEND_URL=file://...), its own PULUMI_HOME, a fixed test passphrase,
 * no update checks and no plugin downloads; PULUMI_* variables of the caller's environment
 * are not passed through (except PULUMI_PROXMOX_* ones, which tests may use).
 *
 * Package resolution: the project gets node_modules/pulumi-proxmox-lxc holding a copy of
 * package.json and dist/ (a symlink to the repository's dist/, or a copy with
 * `packageLink: "copy"`), so it imports
 * the package by name exactly like a user project, and the dynamic provider host (whose
 * requires resolve from the project folder upwards) finds the same installed package.
 * Everything else (@pulumi/pulumi, ts-node, typescript) resolves by walking up to the
 * repository's node_modules. The package is loaded from dist/: run `npm run build` first.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { pulumiPath, REPO_ROOT } from "./cli";

export const TEST_PASSPHRASE = "pulumi-proxmox-lxc-test-passphrase";
export const TMP_ROOT = path.join(REPO_ROOT, "test", ".tmp");

export interface ConfigEntry {
  value: string;
  secret?: boolean;
}

export interface StackOptions {
  /** A folder with a Pulumi program (index.ts, ...) copied into the project. */
  programDir?: string;
  /** Text of index.ts. Exactly one of programDir/programSource. */
  programSource?: string;
  /** Stack config, e.g. { "proxmox:endpoint": { value: "https://..." } }; bare strings are plain values. */
  config?: Record<string, ConfigEntry | string>;
  /** Extra environment for every command (and so for the program and the provider host). */
  env?: Record<string, string>;
  /** How the project gets the package: "symlink" (default) or "copy" (package.json + dist/). */
  packageLink?: "symlink" | "copy";
  /** Type-check the program with ts-node (slower). Default: transpile only; `npm test` runs tsc. */
  typecheck?: boolean;
  projectName?: string;
  stackName?: string;
}

export interface CommandResult {
  args: string[];
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Do not throw on a non-zero exit code. */
  allowFailure?: boolean;
  timeoutMs?: number;
}

export class PulumiCommandError extends Error {
  constructor(public readonly result: CommandResult) {
    super(
      `pulumi ${result.args.join(" ")} exited with ${result.code}\n` +
        `--- stderr (tail) ---\n${tail(result.stderr)}\n--- stdout (tail) ---\n${tail(result.stdout)}`,
    );
    this.name = "PulumiCommandError";
  }
}

function tail(s: string, max = 6000): string {
  return s.length > max ? `...${s.slice(-max)}` : s;
}

/** One step of `preview --json` / `up --json`. */
export interface Step {
  op: string;
  urn: string;
  oldState?: ResourceState;
  newState?: ResourceState;
  diffReasons?: string[];
  replaceReasons?: string[];
  detailedDiff?: Record<string, { kind: string; inputDiff?: boolean }>;
  [k: string]: unknown;
}

export interface ResourceState {
  urn: string;
  type: string;
  id?: string;
  inputs?: Record<string, unknown>;
  outputs?: Record<string, unknown>;
  [k: string]: unknown;
}

/**
 * Result of `pulumi preview --json` (one JSON document) or `pulumi up|refresh|destroy --json`
 * (a stream of engine events, one JSON object per line, folded into the same shape).
 */
export interface OperationResult {
  steps?: Step[];
  changeSummary?: Record<string, number>;
  diagnostics?: Array<{ message?: string; severity?: string; urn?: string }>;
  /** From the summary event of up/refresh/destroy: "succeeded", "failed", ... */
  result?: string;
  [k: string]: unknown;
}

/** Parsed `pulumi stack export`. */
export interface StackExport {
  version: number;
  deployment: { resources?: ResourceState[]; secrets_providers?: unknown; [k: string]: unknown };
}

export class PulumiStack {
  private constructor(
    /** Root of this stack's temp folder (project/, state/, home/). */
    public readonly dir: string,
    public readonly projectDir: string,
    public readonly projectName: string,
    public readonly stackName: string,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  static async create(opts: StackOptions): Promise<PulumiStack> {
    if (!!opts.programDir === (opts.programSource !== undefined)) {
      throw new Error("PulumiStack.create: give exactly one of programDir or programSource");
    }
    const PATH = await pulumiPath();
    fs.mkdirSync(TMP_ROOT, { recursive: true });
    const dir = fs.mkdtempSync(path.join(TMP_ROOT, "stack-"));
    const projectDir = path.join(dir, "project");
    const projectName = opts.projectName ?? `test-${path.basename(dir).slice("stack-".length).toLowerCase()}`;
    const stackName = opts.stackName ?? "test";
    for (const d of ["project", "state", "home"]) fs.mkdirSync(path.join(dir, d), { recursive: true });

    if (opts.programDir) {
      fs.cpSync(opts.programDir, projectDir, { recursive: true });
    } else {
      fs.writeFileSync(path.join(projectDir, "index.ts"), opts.programSource!);
    }
    writeIfMissing(
      path.join(projectDir, "Pulumi.yaml"),
      `name: ${projectName}\nruntime:\n  name: nodejs\n  options:\n    typescript: true\n`,
    );
    writeIfMissing(
      path.join(projectDir, "package.json"),
      JSON.stringify({ name: projectName, private: true, main: "index.ts" }, null, 2) + "\n",
    );
    writeIfMissing(
      path.join(projectDir, "tsconfig.json"),
      JSON.stringify(
        {
          compilerOptions: {
            strict: true,
            target: "ES2022",
            module: "commonjs",
            moduleResolution: "node",
            esModuleInterop: true,
            skipLibCheck: true,
          },
          files: ["index.ts"],
        },
        null,
        2,
      ) + "\n",
    );
    linkPackage(projectDir, opts.packageLink ?? "symlink");

    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) {
      if (k.startsWith("PULUMI_") && !k.startsWith("PULUMI_PROXMOX_")) continue;
      env[k] = v;
    }
    Object.assign(env, {
      PATH,
      PULUMI_BACKEND_URL: `file://${path.join(dir, "state")}`,
      PULUMI_HOME: path.join(dir, "home"),
      PULUMI_CONFIG_PASSPHRASE: TEST_PASSPHRASE,
      PULUMI_SKIP_UPDATE_CHECK: "true",
      PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
      PULUMI_SKIP_CONFIRMATIONS: "true",
      PULUMI_NODEJS_TRANSPILE_ONLY: opts.typecheck ? "false" : "true",
      NO_COLOR: "1",
      ...opts.env,
    });

    const stack = new PulumiStack(dir, projectDir, projectName, stackName, env);
    await stack.run(["stack", "init", stackName]);
    if (opts.config && Object.keys(opts.config).length > 0) {
      await stack.setAllConfig(opts.config);
    }
    return stack;
  }

  /** Run `pulumi <args>` in the project folder. Throws PulumiCommandError on failure unless allowFailure. */
  run(args: string[], opts: RunOptions = {}): Promise<CommandResult> {
    const fullArgs = [...args, "--color=never"];
    return new Promise((resolve, reject) => {
      const child = spawn("pulumi", fullArgs, { cwd: this.projectDir, env: this.env, stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
      child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
      const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 10 * 60 * 1000);
      child.on("error", (err) => {
        clearTimeout(timer);
        reject(new Error(`could not start pulumi (PATH=${this.env.PATH}): ${err.message}`));
      });
      child.on("close", (code, signal) => {
        clearTimeout(timer);
        const result: CommandResult = { args: fullArgs, code: code ?? (signal ? 128 : 1), stdout, stderr };
        if (result.code !== 0 && !opts.allowFailure) reject(new PulumiCommandError(result));
        else resolve(result);
      });
    });
  }

  private async runJson<T>(args: string[]): Promise<T> {
    const result = await this.run(args);
    return parseJson<T>(result);
  }

  private async runEvents(args: string[]): Promise<OperationResult> {
    const result = await this.run(args);
    return parseEvents(result);
  }

  preview(extraArgs: string[] = []): Promise<OperationResult> {
    return this.runJson(["preview", "--json", "--diff", ...extraArgs]);
  }

  up(extraArgs: string[] = []): Promise<OperationResult> {
    return this.runEvents(["up", "--yes", "--skip-preview", "--json", ...extraArgs]);
  }

  refresh(extraArgs: string[] = []): Promise<OperationResult> {
    return this.runEvents(["refresh", "--yes", "--skip-preview", "--json", ...extraArgs]);
  }

  destroy(extraArgs: string[] = []): Promise<OperationResult> {
    return this.runEvents(["destroy", "--yes", "--skip-preview", "--json", ...extraArgs]);
  }

  exportState(opts: { showSecrets?: boolean } = {}): Promise<StackExport> {
    return this.runJson(["stack", "export", ...(opts.showSecrets ? ["--show-secrets"] : [])]);
  }

  outputs(opts: { showSecrets?: boolean } = {}): Promise<Record<string, unknown>> {
    return this.runJson(["stack", "output", "--json", ...(opts.showSecrets ? ["--show-secrets"] : [])]);
  }

  async setConfig(key: string, value: string, opts: { secret?: boolean } = {}): Promise<void> {
    await this.setAllConfig({ [key]: { value, secret: opts.secret } });
  }

  async setAllConfig(config: Record<string, ConfigEntry | string>): Promise<void> {
    const args = ["config", "set-all"];
    for (const [key, entry] of Object.entries(config)) {
      const e = typeof entry === "string" ? { value: entry } : entry;
      args.push(e.secret ? "--secret" : "--plaintext", `${key}=${e.value}`);
    }
    await this.run(args);
  }

  /** Set an environment variable for later commands (the program and provider host inherit it). */
  setEnv(name: string, value: string): void {
    this.env[name] = value;
  }

  /** Replace index.ts (the next preview/up runs the new program). */
  writeProgram(source: string): void {
    fs.writeFileSync(path.join(this.projectDir, "index.ts"), source);
  }

  /** Remove the stack (forcing, in case resources remain) and its temp folder. */
  async remove(): Promise<void> {
    try {
      await this.run(["stack", "rm", "--yes", "--force", this.stackName], { allowFailure: true });
    } finally {
      fs.rmSync(this.dir, { recursive: true, force: true });
    }
  }
}

function writeIfMissing(file: string, text: string): void {
  if (!fs.existsSync(file)) fs.writeFileSync(file, text);
}

function linkPackage(projectDir: string, how: "symlink" | "copy"): void {
  if (!fs.existsSync(path.join(REPO_ROOT, "dist", "sdk", "index.js"))) {
    throw new Error(`${REPO_ROOT}/dist/sdk/index.js is missing: run 'npm run build' before the e2e tests`);
  }
  const target = path.join(projectDir, "node_modules", "pulumi-proxmox-lxc");
  fs.mkdirSync(target, { recursive: true });
  // package.json is always copied (it carries the "exports" map). Only dist/ is linked, never
  // the repository root: a link to the root would make test/.tmp a directory cycle for any tool
  // that walks the tree following links.
  fs.copyFileSync(path.join(REPO_ROOT, "package.json"), path.join(target, "package.json"));
  if (how === "symlink") {
    fs.symlinkSync(path.join(REPO_ROOT, "dist"), path.join(target, "dist"), "dir");
  } else {
    fs.cpSync(path.join(REPO_ROOT, "dist"), path.join(target, "dist"), { recursive: true });
  }
}

export function parseJson<T>(result: CommandResult): T {
  try {
    return JSON.parse(result.stdout) as T;
  } catch (err) {
    throw new Error(
      `pulumi ${result.args.join(" ")}: stdout is not JSON (${(err as Error).message})\n` +
        `--- stdout (tail) ---\n${tail(result.stdout)}\n--- stderr (tail) ---\n${tail(result.stderr)}`,
    );
  }
}

interface EngineEvent {
  resourcePreEvent?: { metadata: StepMetadata };
  summaryEvent?: { resourceChanges?: Record<string, number>; result?: string };
  diagnosticEvent?: { message?: string; severity?: string; urn?: string };
  [k: string]: unknown;
}

interface StepMetadata {
  op: string;
  urn: string;
  old?: ResourceState | null;
  new?: ResourceState | null;
  diffs?: string[];
  detailedDiff?: Step["detailedDiff"] | null;
  [k: string]: unknown;
}

/** Fold the engine event stream of `up|refresh|destroy --json` into an OperationResult. */
export function parseEvents(result: CommandResult): OperationResult {
  const out: OperationResult = { steps: [], diagnostics: [] };
  const lines = result.stdout.split("\n").filter((l) => l.trim() !== "");
  for (const line of lines) {
    let ev: EngineEvent;
    try {
      ev = JSON.parse(line) as EngineEvent;
    } catch (err) {
      throw new Error(
        `pulumi ${result.args.join(" ")}: not an engine event line (${(err as Error).message}): ${line.slice(0, 300)}\n` +
          `--- stderr (tail) ---\n${tail(result.stderr)}`,
      );
    }
    if (ev.resourcePreEvent) {
      const m = ev.resourcePreEvent.metadata;
      out.steps!.push({
        op: m.op,
        urn: m.urn,
        oldState: m.old ?? undefined,
        newState: m.new ?? undefined,
        diffReasons: m.diffs,
        detailedDiff: m.detailedDiff ?? undefined,
      });
    } else if (ev.summaryEvent) {
      out.changeSummary = ev.summaryEvent.resourceChanges ?? {};
      out.result = ev.summaryEvent.result;
    } else if (ev.diagnosticEvent && ev.diagnosticEvent.severity !== "debug") {
      out.diagnostics!.push(ev.diagnosticEvent);
    }
  }
  if (!out.changeSummary) {
    throw new Error(`pulumi ${result.args.join(" ")}: no summary event in the output\n--- stderr (tail) ---\n${tail(result.stderr)}`);
  }
  return out;
}

// ---- assertion helpers -------------------------------------------------------------------

/** The resource name part of a URN (`...::name`). */
export function urnName(urn: string): string {
  return urn.slice(urn.lastIndexOf("::") + 2);
}

/** Steps for custom resources (not the stack itself nor providers). */
export function resourceSteps(result: OperationResult): Step[] {
  return (result.steps ?? []).filter(
    (s) => !s.urn.includes("::pulumi:pulumi:Stack::") && !s.urn.includes("::pulumi:providers:"),
  );
}

/** The op ("same", "create", "update", "replace", "delete", ...) of the step for resource `name`. */
export function opFor(result: OperationResult, name: string): string | undefined {
  const ops = (result.steps ?? []).filter((s) => urnName(s.urn) === name).map((s) => s.op);
  if (ops.length === 0) return undefined;
  // A replacement shows up as several steps (create-replacement, replace, delete-replaced).
  return ops.includes("replace") ? "replace" : ops[0];
}

/**
 * Names of resources (not the stack, not providers) whose step is not "same", sorted.
 * `preview --json` lists no step at all for unchanged custom resources, so "absent" and "same"
 * both mean unchanged.
 */
export function changedResources(result: OperationResult): string[] {
  const names = resourceSteps(result)
    .filter((s) => s.op !== "same")
    .map((s) => urnName(s.urn));
  return [...new Set(names)].sort();
}

/** True when every step is "same" and the summary counts nothing but "same". */
export function hasNoChanges(result: OperationResult): boolean {
  const steps = result.steps ?? [];
  const summary = result.changeSummary ?? {};
  return steps.every((s) => s.op === "same") && Object.keys(summary).every((k) => k === "same");
}

/** Human-readable list of non-"same" steps, for assertion messages. */
export function describeChanges(result: OperationResult): string {
  const changed = (result.steps ?? []).filter((s) => s.op !== "same").map((s) => `${s.op} ${urnName(s.urn)}`);
  return `changes: [${changed.join(", ")}] summary: ${JSON.stringify(result.changeSummary ?? {})}`;
}

/** The resource named `name` in an exported state. */
export function findResource(state: StackExport, name: string): ResourceState | undefined {
  return (state.deployment.resources ?? []).find((r) => urnName(r.urn) === name);
}
