/**
 * The README's test command on a fresh machine: `npm test` (scripts/test.sh) and CI
 * (.ci/run) first run scripts/ensure-tools, which installs the missing Debian packages as
 * root and, as any other user, stops at once with the exact install line.
 *
 * Runs in a clean `git clone` of this repository (what a new user has: committed files only,
 * no node_modules, no dist/), with a fake `dpkg-query` first on PATH that reports chosen
 * packages as not installed. Non-root runs really run as another user (`setpriv` to nobody)
 * when the suite runs as root. Nothing is installed: root runs use `--dry-run`.
 */
import { expect } from "chai";
import { spawnSync, type SpawnSyncReturns } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { REPO_ROOT } from "../support/cli";

const NOBODY = 65534;
const isRoot = process.getuid?.() === 0;

describe("setup: scripts/ensure-tools in a clean clone", function () {
  let dir: string;
  let clone: string;
  let fakeBin: string;

  before(function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "ensure-tools-"));
    fs.chmodSync(dir, 0o755); // readable by the unprivileged user below
    clone = path.join(dir, "repo");
    const r = spawnSync("git", ["clone", "--quiet", REPO_ROOT, clone], { encoding: "utf8" });
    expect(r.status, `git clone: ${r.stderr}`).to.equal(0);
    fakeBin = path.join(dir, "bin");
    fs.mkdirSync(fakeBin);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** A dpkg-query that reports `missing` packages as removed and every other as installed. */
  function fakeDpkgQuery(missing: string[]): void {
    const file = path.join(fakeBin, "dpkg-query");
    fs.writeFileSync(
      file,
      `#!/bin/sh\n# args: -W -f=\${Status} PACKAGE\nfor m in ${missing.join(" ")}; do [ "$3" = "$m" ] && { printf 'deinstall ok config-files'; exit 0; }; done\nprintf 'install ok installed'\n`,
    );
    fs.chmodSync(file, 0o755);
  }

  /**
   * Run a command in the clone: `user` really as an unprivileged user (setpriv when we are
   * root); `root` as root, or — when the suite itself is not root — with a fake `id` that
   * says uid 0 (only ever with --dry-run, so nothing needs the privilege).
   */
  function run(argv: string[], as: "user" | "root"): SpawnSyncReturns<string> {
    let PATH = `${fakeBin}:${process.env.PATH}`;
    if (as === "root" && !isRoot) {
      const fakeRoot = path.join(dir, "root-bin");
      fs.mkdirSync(fakeRoot, { recursive: true });
      fs.writeFileSync(path.join(fakeRoot, "id"), "#!/bin/sh\necho 0\n", { mode: 0o755 });
      PATH = `${fakeRoot}:${PATH}`;
    }
    const cmd = as === "user" && isRoot ? ["setpriv", `--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups", ...argv] : argv;
    return spawnSync(cmd[0], cmd.slice(1), { cwd: clone, env: { ...process.env, PATH }, encoding: "utf8", timeout: 30_000 });
  }

  it("as another user, stops at once with the exact install line of what is missing", function () {
    fakeDpkgQuery(["runc", "skopeo"]);
    const r = run(["bash", "scripts/ensure-tools", "--dry-run"], "user");
    expect(r.status, r.stderr).to.equal(1);
    expect(r.stderr).to.include("missing Debian packages the tests need: skopeo runc");
    expect(r.stderr.split("\n")).to.include("  sudo apt-get update && sudo apt-get install -y skopeo runc");
    expect(r.stdout).to.equal("");
  });

  it("npm test's set-up path (scripts/test.sh) stops before anything else, with that line", function () {
    fakeDpkgQuery(["runc"]);
    const r = run(["bash", "scripts/test.sh"], "user");
    expect(r.status, r.stderr).to.not.equal(0);
    expect(r.stderr.split("\n")).to.include("  sudo apt-get update && sudo apt-get install -y runc");
    expect(r.stdout).to.include("== system packages (scripts/ensure-tools)");
    expect(r.stdout, "nothing after the tools step ran").to.not.include("== typecheck");
  });

  it(".ci/run checks the same list before npm ci, and .ci/run still ends in exactly `npm test`", function () {
    fakeDpkgQuery(["zstd"]);
    const r = run(["bash", ".ci/run"], "user");
    expect(r.status, r.stderr).to.not.equal(0);
    expect(r.stderr.split("\n")).to.include("  sudo apt-get update && sudo apt-get install -y zstd");
    expect(r.stdout).to.not.include("== npm ci");
    const script = fs.readFileSync(path.join(clone, ".ci", "run"), "utf8").trim().split("\n");
    expect(script[script.length - 1]).to.equal("npm test");
  });

  it("as root, would install only what is missing (one update, one install)", function () {
    fakeDpkgQuery(["umoci", "curl"]);
    const r = run(["bash", "scripts/ensure-tools", "--dry-run"], "root");
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stderr.trim()).to.equal("ensure-tools: would run: apt-get update -qq && apt-get install -y -qq umoci curl");
  });

  it("with nothing missing, says nothing and succeeds (as root and as another user)", function () {
    fakeDpkgQuery([]);
    for (const as of ["root", "user"] as const) {
      const r = run(["bash", "scripts/ensure-tools", ...(as === "root" ? ["--dry-run"] : [])], as);
      expect(r.status, r.stderr).to.equal(0);
      expect(r.stderr + r.stdout).to.equal("");
    }
  });

  it("--list prints the one package list that both entry points use", function () {
    fakeDpkgQuery([]);
    const r = run(["bash", "scripts/ensure-tools", "--list"], "user");
    expect(r.stdout.trim().split("\n")).to.include.members(["docker-registry", "skopeo", "umoci", "runc", "zstd"]);
  });
});
