import { expect } from "chai";
import * as fs from "node:fs";
import * as path from "node:path";
import * as ts from "typescript";
import { mainImage } from "./images";
import { cleanupTmp, execFileP, gnuTarExtract, tmpDir, treeManifest, umociUnpack, writeOciLayout } from "./support";

const ROOT = path.resolve(__dirname, "..", "..");

/** Transpiles provider/ to JS (no type check: tsc does that separately). */
function transpile(outRoot: string): void {
  const walk = (rel: string) => {
    for (const e of fs.readdirSync(path.join(ROOT, rel), { withFileTypes: true })) {
      const r = path.join(rel, e.name);
      if (e.isDirectory()) walk(r);
      else if (e.name.endsWith(".ts") && !e.name.endsWith(".d.ts")) {
        const js = ts.transpileModule(fs.readFileSync(path.join(ROOT, r), "utf8"), {
          compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.CommonJS, esModuleInterop: true, resolveJsonModule: true },
        }).outputText;
        fs.mkdirSync(path.join(outRoot, rel), { recursive: true });
        fs.writeFileSync(path.join(outRoot, r.replace(/\.ts$/, ".js")), js);
      } else if (e.name.endsWith(".json")) {
        fs.mkdirSync(path.join(outRoot, rel), { recursive: true });
        fs.copyFileSync(path.join(ROOT, r), path.join(outRoot, r));
      }
    }
  };
  walk("provider");
  fs.symlinkSync(path.join(ROOT, "node_modules"), path.join(outRoot, "node_modules"));
}

describe("oci: compiled CLI (conversion in a worker thread, as in production)", function () {
  this.timeout(60_000);
  after(() => cleanupTmp());

  it("pve-lxc oci template from JS output equals umoci's tree", async () => {
    const out = tmpDir("compiled-");
    transpile(out);
    const layout = path.join(tmpDir(), "layout");
    const allGzip = { ...mainImage, layers: mainImage.layers.map((l) => ({ ...l, compression: "gzip" as const })) };
    await writeOciLayout(layout, { main: mainImage, "main-gz": allGzip });
    const file = path.join(tmpDir(), "main.tar.gz");
    const { stdout } = await execFileP(process.execPath, [path.join(out, "provider/cli/main.js"), "oci", "template", `oci:${layout}:main`, "--out", file, "--cache-dir", tmpDir("cache-"), "--json", "--quiet"], {
      env: { ...process.env, PULUMI_PROXMOX_LOG_FILE: path.join(out, "log") },
    });
    expect(JSON.parse(stdout).file).to.equal(file);
    expect(await treeManifest(await gnuTarExtract(file))).to.deep.equal(await treeManifest(await umociUnpack(layout, "main-gz")));
  });
});
