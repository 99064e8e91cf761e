/**
 * Locating the Pulumi CLI for tests. scripts/test.sh exports a PATH prepared by
 * scripts/ensure-pulumi; when a suite is run directly (`npx mocha test/e2e/noop.test.ts`) we
 * call the same script here, once per process, so both paths use the same CLI and cache.
 */
import { execFile } from "node:child_process";
import * as path from "node:path";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

export const REPO_ROOT = path.resolve(__dirname, "..", "..");
export const EXPECTED_PULUMI_VERSION = "v3.248.0";

let pathPromise: Promise<string> | undefined;

/**
 * PATH holding `pulumi`, `pulumi-language-nodejs` and `pulumi-resource-pulumi-nodejs`.
 * May take minutes the first time on a machine (it builds the CLI); callers should give their
 * `before` hook a long timeout.
 */
export function pulumiPath(): Promise<string> {
  if (!pathPromise) {
    pathPromise = execFileAsync("bash", [path.join(REPO_ROOT, "scripts", "ensure-pulumi")], {
      cwd: REPO_ROOT,
      maxBuffer: 16 * 1024 * 1024,
      timeout: 30 * 60 * 1000,
    }).then(
      ({ stdout }) => stdout.trim(),
      (err: NodeJS.ErrnoException & { stderr?: string }) => {
        pathPromise = undefined;
        throw new Error(`scripts/ensure-pulumi failed: ${err.message}\n${err.stderr ?? ""}`);
      },
    );
  }
  return pathPromise;
}

/** `pulumi version` with the prepared PATH, e.g. "v3.248.0". */
export async function pulumiVersion(): Promise<string> {
  const PATH = await pulumiPath();
  const { stdout } = await execFileAsync("pulumi", ["version"], {
    env: { ...process.env, PATH, PULUMI_SKIP_UPDATE_CHECK: "true" },
  });
  return stdout.trim();
}
