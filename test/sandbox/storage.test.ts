/**
 * Sandbox conformance: storage content, upload (checksum, extension rules, injected
 * reset), download-url, aplinfo, DELETE content with delay, fault injection
 * (BEHAVIOR.md §6, §3.2).
 */
import { expect } from "chai";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as https from "node:https";
import * as os from "node:os";
import * as path from "node:path";
import { request, startEnv, fetchTemplate, ALPINE, type Env } from "./helpers";

function multipart(parts: Array<{ name: string; value?: string; filename?: string; data?: Buffer }>) {
  const boundary = `----sandbox${crypto.randomBytes(8).toString("hex")}`;
  const chunks: Buffer[] = [];
  for (const p of parts) {
    const disp = p.filename !== undefined ? `form-data; name="${p.name}"; filename="${p.filename}"` : `form-data; name="${p.name}"`;
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Disposition: ${disp}\r\n${p.filename !== undefined ? "Content-Type: application/octet-stream\r\n" : ""}\r\n`));
    chunks.push(p.data ?? Buffer.from(p.value ?? ""));
    chunks.push(Buffer.from("\r\n"));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}` };
}

describe("sandbox: storage content (§6) and faults", function () {
  let env: Env;
  before(async () => {
    env = await startEnv();
  });
  after(async () => env.sb.stop());

  const upload = (parts: Parameters<typeof multipart>[0], storage = "local") => {
    const mp = multipart(parts);
    return env.api("POST", `/nodes/pve1/storage/${storage}/upload`, { body: mp.body, headers: { "Content-Type": mp.contentType } });
  };

  it("aplinfo lists the built-in appliances with real checksums; POST downloads one", async () => {
    const list = (await env.api("GET", "/nodes/pve1/aplinfo")).json.data;
    const alp = list.find((a: any) => a.template === ALPINE);
    expect(alp).to.include({ type: "lxc", os: "alpine", package: "alpine-3.20-default" });
    const file = await new Promise<Buffer>((resolve, reject) =>
      https.get(alp.location, { ca: env.sb.caCertPem }, (res) => {
        const c: Buffer[] = [];
        res.on("data", (d: Buffer) => c.push(d));
        res.on("end", () => resolve(Buffer.concat(c)));
      }).on("error", reject),
    );
    expect(crypto.createHash("sha512").update(file).digest("hex")).to.equal(alp.sha512sum);
    expect(crypto.createHash("md5").update(file).digest("hex")).to.equal(alp.md5sum);
    const nope = await env.api("POST", "/nodes/pve1/aplinfo", { form: { storage: "local", template: "nope.tar.gz" } });
    expect(nope.json.errors).to.deep.equal({ template: "no such template" });
    const lvm = await env.api("POST", "/nodes/pve1/aplinfo", { form: { storage: "local-lvm", template: ALPINE } });
    expect(lvm.json.message).to.equal("storage 'local-lvm' does not support templates\n");
    await fetchTemplate(env, ALPINE);
    const content = (await env.api("GET", "/nodes/pve1/storage/local/content?content=vztmpl")).json.data;
    expect(content).to.have.length(1);
    expect(content[0]).to.include({ volid: `local:vztmpl/${ALPINE}`, format: "tgz", size: file.length, content: "vztmpl" });
    expect(content[0].ctime).to.be.a("number");
  });

  it("upload: checksum verified in the task, filename normalised, .tgz refused", async () => {
    const data = crypto.randomBytes(4096);
    const sha = crypto.createHash("sha256").update(data).digest("hex");
    const ok = await upload([
      { name: "content", value: "vztmpl" }, { name: "checksum-algorithm", value: "sha256" }, { name: "checksum", value: sha },
      { name: "filename", filename: "my tmpl (1).tar.xz", data },
    ]);
    expect(ok.status, ok.text).to.equal(200);
    const st = await env.wait(ok.json.data);
    expect(st).to.include({ type: "imgcopy", id: "", exitstatus: "OK" });
    expect((await env.log(ok.json.data)).includes("finished file import successfully")).to.equal(true);
    const list = (await env.api("GET", "/nodes/pve1/storage/local/content?content=vztmpl")).json.data.map((i: any) => i.volid);
    expect(list).to.include("local:vztmpl/my_tmpl__1_.tar.xz");
    expect(list).to.deep.equal([...list].sort((a: string, b: string) => a.toLowerCase().localeCompare(b.toLowerCase())));
    const bad = await upload([
      { name: "content", value: "vztmpl" }, { name: "checksum-algorithm", value: "sha256" }, { name: "checksum", value: "0".repeat(64) },
      { name: "filename", filename: "other.tar.gz", data },
    ]);
    const badSt = await env.wait(bad.json.data);
    expect(badSt.exitstatus).to.equal(`checksum mismatch: got '${sha}' != expect '${"0".repeat(64)}'`);
    const tgz = await upload([{ name: "content", value: "vztmpl" }, { name: "filename", filename: "x.tgz", data }]);
    expect(tgz.status).to.equal(400);
    expect(tgz.json.errors).to.deep.equal({ filename: "wrong file extension" });
    const lvm = await upload([{ name: "content", value: "vztmpl" }, { name: "filename", filename: "x.tar.gz", data }], "local-lvm");
    expect(lvm.json.message).to.equal("can't upload to storage type 'lvmthin'\n");
  });

  it("upload: a reset mid-upload leaves no temp file and no template", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-upload-"));
    const env2 = await startEnv({ stateDir: dir });
    try {
      await env2.sb.admin.addFault({ method: "POST", path: "/nodes/{node}/storage/{storage}/upload", action: "reset-mid-upload", afterBytes: 64 * 1024 });
      const data = crypto.randomBytes(512 * 1024);
      const mp = multipart([{ name: "content", value: "vztmpl" }, { name: "filename", filename: "big.tar.gz", data }]);
      const send = () => env2.api("POST", "/nodes/pve1/storage/local/upload", { body: mp.body, headers: { "Content-Type": mp.contentType } });
      const err = await send().then(() => undefined, (e: Error) => e);
      expect(err, "the connection is reset").to.be.instanceOf(Error);
      await new Promise((r) => setTimeout(r, 50));
      expect(fs.readdirSync(path.join(dir, "tmp"))).to.deep.equal([]);
      const list = (await env2.api("GET", "/nodes/pve1/storage/local/content?content=vztmpl")).json.data.map((i: any) => i.volid);
      expect(list).to.not.include("local:vztmpl/big.tar.gz");
      // the fault fired once: the retry goes through and its temp file is cleaned up too
      const ok = await send();
      expect((await env2.wait(ok.json.data)).exitstatus).to.equal("OK");
      expect(fs.readdirSync(path.join(dir, "tmp"))).to.deep.equal([]);
    } finally {
      await env2.sb.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("download-url: fetch with verify-certificates, existing-file rules", async () => {
    const apl = (await env.api("GET", "/nodes/pve1/aplinfo")).json.data.find((a: any) => a.template.startsWith("debian"));
    const form = { url: apl.location, content: "vztmpl", filename: "deb.tar.gz", "verify-certificates": 0 };
    const st = await env.task("POST", "/nodes/pve1/storage/local/download-url", form);
    expect(st).to.include({ type: "download", id: "deb.tar.gz", exitstatus: "OK" });
    const again = await env.task("POST", "/nodes/pve1/storage/local/download-url", form);
    expect(again.exitstatus).to.equal("refusing to override existing file '/var/lib/vz/template/cache/deb.tar.gz'");
    const same = await env.task("POST", "/nodes/pve1/storage/local/download-url", { ...form, checksum: apl.sha512sum, "checksum-algorithm": "sha512" });
    expect(same.exitstatus).to.equal("OK");
    expect(await env.log(same.upid)).to.include("OK, got correct file already, no need to download");
    const verify = await env.task("POST", "/nodes/pve1/storage/local/download-url", { url: apl.location, content: "vztmpl", filename: "deb2.tar.gz" });
    expect(verify.exitstatus).to.match(/^download failed: /);
    const ext = await env.api("POST", "/nodes/pve1/storage/local/download-url", { form: { ...form, filename: "x.tgz" } });
    expect(ext.json.errors).to.deep.equal({ filename: "wrong file extension" });
    const lvm = await env.api("POST", "/nodes/pve1/storage/local-lvm/download-url", { form });
    expect(lvm.json.message).to.equal("can't upload to storage type 'lvmthin', not a file based storage!\n");
  });

  it("DELETE content: imgdel task, delay returns null, storage mismatch", async () => {
    const mismatch = await env.api("DELETE", `/nodes/pve1/storage/local/content/${encodeURIComponent("shared-nfs:vztmpl/deb.tar.gz")}`);
    expect(mismatch.status).to.equal(400);
    const delayed = await env.api("DELETE", `/nodes/pve1/storage/local/content/local:vztmpl/deb.tar.gz?delay=5`);
    expect(delayed.status).to.equal(200);
    expect(delayed.json.data).to.equal(null);
    const upid = await env.api("DELETE", `/nodes/pve1/storage/local/content/${encodeURIComponent("local:vztmpl/my_tmpl__1_.tar.xz")}`);
    const st = await env.wait(upid.json.data);
    expect(st).to.include({ type: "imgdel", id: "local", exitstatus: "OK" });
    expect(await env.log(upid.json.data)).to.include("Removed volume 'local:vztmpl/my_tmpl__1_.tar.xz'");
    // Recorded from PVE 8.4.21 (`delete uploaded volume again`): a file already gone is no
    // error on a dir storage — the task warns in its log and ends OK (was a failed task).
    const missing = await env.api("DELETE", `/nodes/pve1/storage/local/content/local:vztmpl/deb.tar.gz?delay=5`);
    expect(missing.status).to.equal(200);
    expect(missing.json.data).to.equal(null);
    const again = await env.api("DELETE", `/nodes/pve1/storage/local/content/local:vztmpl/deb.tar.gz`);
    expect((await env.wait(again.json.data)).exitstatus).to.equal("OK");
    expect(await env.log(again.json.data)).to.deep.equal([
      "disk image '/var/lib/vz/template/cache/deb.tar.gz' does not exist",
      "Removed volume 'local:vztmpl/deb.tar.gz'",
      "TASK OK",
    ]);
  });

  it("faults: reset before/after the handler on the Nth match, injected status", async () => {
    await env.sb.admin.resetCounters();
    await env.sb.admin.addFault({ method: "GET", path: "/version", action: "reset-before", nth: 2 });
    expect((await env.api("GET", "/version")).status).to.equal(200);
    const reset = await env.api("GET", "/version").then(() => "answered", (e: NodeJS.ErrnoException) => e.code);
    expect(reset).to.be.oneOf(["ECONNRESET", "EPIPE", "ECONNABORTED"]);
    expect((await env.api("GET", "/version")).status).to.equal(200);
    await env.sb.admin.addFault({ method: "POST", path: "/pools", action: "reset-after" });
    const after = await env.api("POST", "/pools", { form: { poolid: "dropped" } }).then(() => "answered", (e: NodeJS.ErrnoException) => e.code);
    expect(after).to.equal("ECONNRESET");
    expect((await env.api("GET", "/pools")).json.data.map((p: any) => p.poolid)).to.include("dropped");
    await env.sb.admin.addFault({ path: "/nodes/pve1/storage", action: "status", status: 596, message: "Connection timed out" });
    const s = await env.api("GET", "/nodes/pve1/storage");
    expect(s.status).to.equal(596);
    expect(s.reason).to.equal("Connection timed out");
    expect(s.json).to.deep.equal({ data: null, message: "Connection timed out\n" });
    const c = await env.sb.admin.counters();
    expect(c.requests["GET /version"]).to.equal(3);
    expect(c.requests["GET /nodes/{node}/storage"]).to.equal(1);
    expect(await env.sb.admin.prometheus()).to.match(/pve_sandbox_requests_total\{[^}]*endpoint="\/version"/);
  });

  it("admin HTTP endpoints need the admin secret or the root token", async () => {
    const anon = await request(env.sb, "GET", "/_sandbox/counters", { raw: true, auth: null });
    expect(anon.status).to.equal(401);
    const withSecret = await request(env.sb, "GET", "/_sandbox/counters", { raw: true, auth: null, headers: { "X-Sandbox-Admin": env.sb.adminSecret } });
    expect(withSecret.status).to.equal(200);
    expect(withSecret.json.data.requests).to.be.an("object");
  });
});
