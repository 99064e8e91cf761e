/**
 * `npm run demo` end to end (scripts/demo), in a temporary DEMO_DIR: the first run starts the
 * sandbox in the background and creates the quickstart stack, the second reuses the sandbox
 * and changes nothing, `--destroy` deletes everything and stops the sandbox. The sandbox
 * process is killed at the end whatever happened.
 *
 * The build step is skipped (DEMO_SKIP_BUILD=1): `npm test` has just built dist/.
 */
import { expect } from "chai";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { PveClient } from "../../provider/proxmox/client";
import { REPO_ROOT, pulumiPath } from "../support/cli";
import { TMP_ROOT } from "../support/pulumi";

interface Run {
  code: number;
  out: string;
}

function runDemo(demoDir: string, args: string[] = []): Promise<Run> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("PULUMI_")) env[k] = v;
    Object.assign(env, { DEMO_DIR: demoDir, DEMO_STACK: "e2e", DEMO_SKIP_BUILD: "1", NO_COLOR: "1" });
    const child = spawn("bash", [path.join(REPO_ROOT, "scripts", "demo"), ...args], { cwd: REPO_ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (out += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), 8 * 60 * 1000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 1, out });
    });
  });
}

const summary = (out: string) => out.slice(out.lastIndexOf("Resources:"));

describe("e2e: npm run demo (scripts/demo)", function () {
  this.timeout(10 * 60 * 1000);
  let demoDir: string;
  const pidFile = () => path.join(demoDir, "sandbox.pid");

  before(async function () {
    this.timeout(45 * 60 * 1000);
    await pulumiPath();
    fs.mkdirSync(TMP_ROOT, { recursive: true });
    demoDir = fs.mkdtempSync(path.join(TMP_ROOT, "demo-"));
  });

  after(() => {
    if (!demoDir) return;
    if (fs.existsSync(pidFile())) {
      const pid = Number(fs.readFileSync(pidFile(), "utf8"));
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        /* already gone */
      }
    }
    fs.rmSync(demoDir, { recursive: true, force: true });
  });

  it("first run: starts the sandbox, creates the quickstart stack and prints its outputs", async () => {
    const r = await runDemo(demoDir);
    expect(r.code, r.out.slice(-4000)).to.equal(0);
    expect(r.out).to.match(/sandbox started \(pid \d+/);
    expect(summary(r.out), r.out.slice(-3000)).to.match(/\+ 5 created/);
    expect(r.out).to.include('"templateVolid": "local:vztmpl/debian-12-mini_12.0_amd64.tar.gz"');
    // State, config, rootfs and sandbox all live in DEMO_DIR; the token is stored encrypted.
    for (const f of ["state", "sandbox", "connection.json", "Pulumi.e2e.yaml", "rootfs/debian-12-mini_12.0_amd64.tar.gz"]) {
      expect(fs.existsSync(path.join(demoDir, f)), f).to.equal(true);
    }
    const conn = JSON.parse(fs.readFileSync(path.join(demoDir, "connection.json"), "utf8"));
    const tokenSecret = String(conn.apiToken).split("=")[1];
    expect(fs.readFileSync(path.join(demoDir, "Pulumi.e2e.yaml"), "utf8")).to.not.include(tokenSecret);
    expect(r.out, "the token never reaches the output").to.not.include(tokenSecret);
    const client = PveClient.connect({ endpoint: conn.endpoint, apiToken: conn.apiToken, tlsFingerprint: conn.tlsFingerprint });
    expect((await client.cluster.containers()).length).to.equal(2);
  });

  it("second run: reuses the running sandbox and changes nothing", async () => {
    const pid = fs.readFileSync(pidFile(), "utf8").trim();
    const r = await runDemo(demoDir);
    expect(r.code, r.out.slice(-4000)).to.equal(0);
    expect(r.out).to.include(`reusing the running sandbox (pid ${pid}`);
    const s = summary(r.out);
    expect(s, r.out.slice(-3000)).to.match(/^Resources:\s+\d+ unchanged\s*\n/);
    expect(s).to.not.match(/created|updated|replaced|deleted/);
  });

  it("--destroy: deletes the stack's resources, removes the stack and stops the sandbox", async () => {
    const pid = Number(fs.readFileSync(pidFile(), "utf8"));
    const r = await runDemo(demoDir, ["--destroy"]);
    expect(r.code, r.out.slice(-4000)).to.equal(0);
    expect(summary(r.out), r.out.slice(-3000)).to.match(/- 5 deleted/);
    expect(r.out).to.include("stack e2e destroyed and removed");
    expect(fs.existsSync(pidFile()), "pid file removed").to.equal(false);
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch {
      alive = false;
    }
    expect(alive, `sandbox pid ${pid} stopped`).to.equal(false);
  });
});
