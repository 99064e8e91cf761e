/**
 * Logs are written asynchronously; a provider that fails must still leave every line in
 * the file. Runs a child process that logs and then dies in the three ways a provider
 * process ends badly, and counts the lines.
 */
import { expect } from "chai";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

const ROOT = path.resolve(__dirname, "..", "..");

function runChild(ending: string, file: string): number | null {
  const script = `
    const { configureLogging, getLogger } = require(${JSON.stringify(path.join(ROOT, "provider/logging"))});
    configureLogging({ file: ${JSON.stringify(file)}, level: "debug" });
    const log = getLogger().child({ resourceType: "Container", operation: "create" });
    for (let i = 0; i < 5000; i++) log.debug({ i, pad: "x".repeat(200) }, "line");
    log.error("last words");
    ${ending}
  `;
  const r = spawnSync(process.execPath, ["-r", "ts-node/register/transpile-only", "-e", script], { cwd: ROOT, encoding: "utf8" });
  return r.status;
}

describe("log flushing", function () {
  this.timeout(60_000);
  for (const [label, ending] of [
    ["uncaught exception", "throw new Error('boom')"],
    ["process.exit(1)", "process.exit(1)"],
    ["unhandled rejection", "Promise.reject(new Error('boom'))"],
  ]) {
    it(`keeps every line on ${label}`, () => {
      const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "flush-")), "provider.log");
      const code = runChild(ending, file);
      expect(code).to.not.equal(0);
      const lines = fs.readFileSync(file, "utf8").trim().split("\n");
      expect(lines.length).to.equal(5001);
      const last = JSON.parse(lines[lines.length - 1]);
      expect(last).to.include({ msg: "last words", level: "error", resourceType: "Container", operation: "create" });
    });
  }
});
