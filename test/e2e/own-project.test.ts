/**
 * README, "Using it in your own project", step by step in a folder outside the repository:
 * `npm pack` this package, `eval "$(scripts/ensure-pulumi --export)"`, the README's own
 * `npm install` line with the packed tarball, then `pulumi up`, `preview` and `destroy` of a
 * Noop program (no Proxmox needed).
 *
 * What a user relies on: the PATH that ensure-pulumi hands out holds nothing of this
 * repository, the engine takes the dynamic-provider launcher from next to `pulumi` (no
 * "from $PATH" warning), and that launcher runs the dynamic provider of the PROJECT's own
 * @pulumi/pulumi — proven by a marker the test adds to the project's copy only.
 */
import { expect } from "chai";
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { pulumiPath, REPO_ROOT } from "../support/cli";

const PROGRAM = `import { Noop } from "pulumi-proxmox-lxc";

const check = new Noop("check", { value: "hello from my own project" });
export const value = check.value;
`;

/** The README's `npm install ...` line for a user project. */
function readmeInstallLine(): string[] {
  const readme = fs.readFileSync(path.join(REPO_ROOT, "README.md"), "utf8");
  const line = /^npm install @pulumi\/pulumi@\S+ .*\.tgz$/m.exec(readme)?.[0];
  expect(line, "README has the npm install line of the own-project steps").to.be.a("string");
  return line!.split(/\s+/);
}

describe("e2e: a user's own project set up from the README (packed tarball, outside the repo)", function () {
  this.timeout(10 * 60 * 1000);
  let dir: string;
  let project: string;
  let env: NodeJS.ProcessEnv;
  const marker = () => path.join(dir, "dynamic-provider-used");

  function pulumi(args: string[]): { stdout: string; stderr: string } {
    const r = spawnSync("pulumi", [...args, "--color=never"], { cwd: project, env, encoding: "utf8", timeout: 5 * 60 * 1000 });
    expect(r.status, `pulumi ${args.join(" ")}\n${r.stderr}\n${r.stdout}`).to.equal(0);
    return { stdout: r.stdout, stderr: r.stderr };
  }

  before(async function () {
    this.timeout(45 * 60 * 1000);
    await pulumiPath(); // builds the CLI on a machine's first run
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "own-project-"));
    project = path.join(dir, "hello");
    fs.mkdirSync(project);

    // npm pack (the README runs npm ci && npm run build first; the e2e suites need dist/ built).
    execFileSync("npm", ["pack", "--silent", "--pack-destination", dir], { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "inherit"] });
    const tarball = fs.readdirSync(dir).find((f) => f.endsWith(".tgz"));
    expect(tarball, "npm pack wrote a tarball").to.be.a("string");

    // eval "$(scripts/ensure-pulumi --export)" in a user's shell (npx/mocha put node_modules/.bin on ours).
    const userPath = process.env.PATH!.split(":").filter((d) => !d.startsWith(REPO_ROOT) && !d.includes("node_modules")).join(":");
    const shell = { ...process.env, PATH: userPath };
    const exported = execFileSync("bash", [path.join(REPO_ROOT, "scripts", "ensure-pulumi"), "--export"], { encoding: "utf8", env: shell, stdio: ["ignore", "pipe", "pipe"] });
    const PATH = execFileSync("bash", ["-c", `${exported}\nprintf %s "$PATH"`], { encoding: "utf8", env: shell });
    env = {
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("PULUMI_"))),
      PATH,
      PULUMI_BACKEND_URL: `file://${path.join(project, ".state")}`,
      PULUMI_CONFIG_PASSPHRASE: "choose-one",
      PULUMI_HOME: path.join(dir, "pulumi-home"),
      PULUMI_SKIP_UPDATE_CHECK: "true",
      PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
      OWN_PROJECT_MARKER: marker(),
    };

    // The project files and the README's npm install line, with the packed tarball.
    fs.writeFileSync(path.join(project, "Pulumi.yaml"), "name: hello\nruntime: nodejs\n");
    fs.writeFileSync(path.join(project, "package.json"), JSON.stringify({ name: "hello", main: "index.ts" }) + "\n");
    fs.writeFileSync(path.join(project, "index.ts"), PROGRAM);
    fs.mkdirSync(path.join(project, ".state"));
    const [npm, ...args] = readmeInstallLine().map((a) => (a.endsWith(".tgz") ? path.join(dir, tarball!) : a));
    execFileSync(npm, [...args, "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"], { cwd: project, env, stdio: ["ignore", "pipe", "inherit"] });

    // Mark the project's own copy of the dynamic provider: if it runs, the marker appears.
    const own = path.join(project, "node_modules", "@pulumi", "pulumi", "cmd", "dynamic-provider", "index.js");
    const text = fs.readFileSync(own, "utf8");
    fs.writeFileSync(own, `require("fs").appendFileSync(process.env.OWN_PROJECT_MARKER, __filename + "\\n");\n${text}`);
  });
  after(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("ensure-pulumi --export puts nothing of this repository on PATH", function () {
    const repoDirs = env.PATH!.split(":").filter((d) => d.startsWith(REPO_ROOT) || d.includes("node_modules"));
    expect(repoDirs).to.deep.equal([]);
    const pulumiDir = path.dirname(execFileSync("bash", ["-c", "command -v pulumi"], { env, encoding: "utf8" }).trim());
    for (const helper of ["pulumi-language-nodejs", "pulumi-resource-pulumi-nodejs"]) {
      expect(fs.existsSync(path.join(pulumiDir, helper)), `${helper} next to pulumi`).to.equal(true);
    }
  });

  it("pulumi up, preview and destroy run with the project's own @pulumi/pulumi, without the $PATH warning", function () {
    pulumi(["stack", "init", "dev"]);
    const up = pulumi(["up", "--yes"]);
    expect(up.stdout).to.match(/\+ 2 created/);
    expect(pulumi(["stack", "output", "value"]).stdout.trim()).to.equal("hello from my own project");

    const preview = pulumi(["preview"]);
    expect(preview.stdout).to.match(/2 unchanged/);

    const destroy = pulumi(["destroy", "--yes"]);
    expect(destroy.stdout).to.match(/- 2 deleted/);

    for (const out of [up, preview, destroy]) {
      expect(out.stdout + out.stderr).to.not.include("from $PATH");
    }
    const used = [...new Set(fs.readFileSync(marker(), "utf8").trim().split("\n"))];
    expect(used).to.deep.equal([fs.realpathSync(path.join(project, "node_modules", "@pulumi", "pulumi", "cmd", "dynamic-provider", "index.js"))]);
  });
});
