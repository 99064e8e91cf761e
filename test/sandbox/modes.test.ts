/**
 * Sandbox conformance: OCI app containers (BEHAVIOR.md §7), PVE 8.4 mode (schema-driven
 * 501/400 for 9.1-only features), `--state DIR` persistence across restarts.
 */
import { expect } from "chai";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import * as net from "node:net";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { startEnv, fetchTemplate, createCt, ociArchive, uploadTemplate, ALPINE, type Env } from "./helpers";

describe("sandbox: OCI application containers (§7)", function () {
  let env: Env;
  before(async () => {
    env = await startEnv();
  });
  after(async () => env.sb.stop());

  it("Entrypoint+Cmd → entrypoint, Env → env, console mode, host-managed nets, unmanaged without os-release", async () => {
    await uploadTemplate(env, "app_1.0.tar", await ociArchive({ config: { Entrypoint: ["/bin/app", "--flag"], Cmd: ["hello world"], Env: ["PATH=/usr/bin", "A=1"], WorkingDir: "/srv" } }));
    const st = await env.task("POST", "/nodes/pve1/lxc", { vmid: 300, ostemplate: "local:vztmpl/app_1.0.tar", rootfs: "local-lvm:1", net0: "name=eth0,bridge=vmbr0,ip=dhcp" });
    expect(st.exitstatus).to.equal("WARNINGS: 1");
    const log = await env.log(st.upid);
    expect(log).to.include("Detected OCI archive");
    expect(log).to.include("Auto-Enabling host-managed network for network device net0.");
    const cfg = (await env.api("GET", "/nodes/pve1/lxc/300/config")).json.data;
    expect(cfg.entrypoint).to.equal("/bin/app --flag 'hello world'");
    expect(cfg.env).to.equal("PATH=/usr/bin\u0000A=1");
    expect(cfg.cmode).to.equal("console");
    expect(cfg.ostype).to.equal("unmanaged");
    expect(cfg.net0).to.match(/host-managed=1/);
    // PVE writes lxc.signal.halt always (SIGTERM when the image has no StopSignal); the sandbox
    // used to omit it (Create.pm restore_oci_archive, see docs/sandbox.md "Behaviour beyond the recording").
    expect(cfg.lxc).to.deep.equal([["lxc.init.cwd", "/srv"], ["lxc.signal.halt", "SIGTERM"]]);
    const raw = (await env.sb.admin.rawConfig(300))!;
    expect(raw).to.include("lxc.environment.runtime: PATH=/usr/bin\nlxc.environment.runtime: A=1\n");
  });

  it("ostype from /etc/os-release in the layers", async () => {
    await uploadTemplate(env, "alp_3.20.tar", await ociArchive({ osRelease: "NAME=Alpine\nID=alpine\n", config: { Cmd: ["/bin/sh"] } }));
    const st = await env.task("POST", "/nodes/pve1/lxc", { vmid: 301, ostemplate: "local:vztmpl/alp_3.20.tar", rootfs: "local-lvm:1" });
    expect(st.exitstatus).to.equal("OK");
    expect((await env.api("GET", "/nodes/pve1/lxc/301/config")).json.data.ostype).to.equal("alpine");
  });

  it("oci-registry-pull: filename rule and refusing to override", async () => {
    await uploadTemplate(env, "alpine_3.20.tar", await ociArchive({ config: {} }));
    const r = await env.api("POST", "/nodes/pve1/storage/local/oci-registry-pull", { form: { reference: "docker.io/library/alpine:3.20" } });
    expect(r.status).to.equal(500);
    const hasSkopeo = spawnSync("sh", ["-c", "command -v skopeo"]).status === 0;
    expect(r.json.message).to.equal(hasSkopeo ? "refusing to override existing file 'alpine_3.20.tar'\n" : "Install 'skopeo' to pull OCI images from registries.\n");
  });
});

describe("sandbox: PVE 8.4 mode", function () {
  let env: Env;
  before(async () => {
    env = await startEnv({ pveVersion: "8.4" });
  });
  after(async () => env.sb.stop());

  it("reports 8.4 and rejects 9.1-only params and endpoints as 8.4 would", async () => {
    const v = (await env.api("GET", "/version")).json.data;
    expect(v.release).to.equal("8.4");
    await env.sb.admin.resetCounters();
    const r = await env.api("POST", "/nodes/pve1/lxc", {
      form: { vmid: 100, ostemplate: "local:vztmpl/x.tar.gz", entrypoint: "/bin/sh", env: "A=1", net0: "name=eth0,bridge=vmbr0,host-managed=1" },
    });
    expect(r.status).to.equal(400);
    expect(r.json.errors.entrypoint).to.equal("property is not defined in schema and the schema does not allow additional properties");
    expect(r.json.errors.env).to.equal("property is not defined in schema and the schema does not allow additional properties");
    expect(r.json.errors.net0).to.equal("invalid format - invalid key in comma-separated list property: host-managed\n");
    const pull = await env.api("POST", "/nodes/pve1/storage/local/oci-registry-pull", { form: { reference: "alpine:3.20" } });
    expect(pull.status).to.equal(501);
    expect(pull.json.message).to.equal("Method 'POST /nodes/pve1/storage/local/oci-registry-pull' not implemented\n");
    expect((await env.sb.admin.counters()).violationCount).to.equal(2);
  });

  // Changed to the recorded PVE 8.4.21 answer (transcript `wrong token (401)`): 8.4 mode
  // used to send the older raw text `invalid token value!`.
  it("answers a bad token with 401 `Authentication failed!` as PVE 8.4.21 does", async () => {
    const { request } = await import("./helpers");
    const bad = await request(env.sb, "GET", "/version", { auth: { token: "root@pam!sandbox=nope" } });
    expect(bad.status).to.equal(401);
    expect(bad.reason).to.equal("Authentication failed!");
  });
});

describe("sandbox: --state DIR persistence", function () {
  it("a CT, the template, tokens and the certificate survive a restart", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-state-"));
    try {
      const env1 = await startEnv({ stateDir: dir });
      await fetchTemplate(env1, ALPINE);
      await createCt(env1, 100, { ostemplate: `local:vztmpl/${ALPINE}`, hostname: "keep", net0: "name=eth0,bridge=vmbr0,ip=dhcp" });
      await env1.sb.admin.writeVolumeMarker("local-lvm:vm-100-disk-0", "persisted");
      const cfg1 = (await env1.api("GET", "/nodes/pve1/lxc/100/config")).json.data;
      const first = { token: env1.sb.apiToken, fp: env1.sb.tlsFingerprint, pw: env1.sb.password };
      await env1.sb.stop();
      expect(fs.existsSync(path.join(dir, "state.json"))).to.equal(true);

      const env2 = await startEnv({ stateDir: dir });
      try {
        expect({ token: env2.sb.apiToken, fp: env2.sb.tlsFingerprint, pw: env2.sb.password }).to.deep.equal(first);
        const cfg2 = (await env2.api("GET", "/nodes/pve1/lxc/100/config")).json.data;
        expect(cfg2).to.deep.equal(cfg1);
        expect(await env2.sb.admin.readVolumeMarker("local-lvm:vm-100-disk-0")).to.equal("persisted");
        const content = (await env2.api("GET", "/nodes/pve1/storage/local/content")).json.data.map((c: any) => c.volid);
        expect(content).to.include(`local:vztmpl/${ALPINE}`);
        const tasks = (await env2.api("GET", "/nodes/pve1/tasks?vmid=100")).json.data;
        expect(tasks.map((t: any) => t.type)).to.include("vzcreate");
        expect((await env2.api("GET", "/cluster/nextid")).json.data).to.equal("101");
      } finally {
        await env2.sb.stop();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("sandbox: oci-registry-pull from a loopback registry (§6.6)", function () {
  let env: Env;
  let registry: ChildProcess | undefined;
  let port = 0;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-registry-"));
  before(async function () {
    for (const tool of ["skopeo", "docker-registry"]) {
      if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) throw new Error(`required tool '${tool}' is missing (apt-get install -y skopeo docker-registry)`);
    }
    port = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, "127.0.0.1", () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    fs.writeFileSync(path.join(dir, "config.yml"), `version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/data\nhttp:\n  addr: 127.0.0.1:${port}\n`);
    registry = spawn("docker-registry", ["serve", path.join(dir, "config.yml")], { stdio: "ignore" });
    for (let i = 0; ; i++) {
      const up = await new Promise<boolean>((resolve) => net.connect(port, "127.0.0.1").on("connect", function (this: net.Socket) { this.end(); resolve(true); }).on("error", () => resolve(false)));
      if (up) break;
      if (i > 100) throw new Error("docker-registry did not start");
      await new Promise((r) => setTimeout(r, 100));
    }
    const archive = path.join(dir, "img.tar");
    fs.writeFileSync(archive, await ociArchive({ osRelease: "ID=alpine\n", config: { Entrypoint: ["/bin/app"], Env: ["X=1"] } }));
    const push = spawnSync("skopeo", ["copy", "--dest-tls-verify=false", `oci-archive:${archive}`, `docker://127.0.0.1:${port}/demo/app:1.0`], { encoding: "utf8" });
    if (push.status !== 0) throw new Error(`skopeo push failed: ${push.stderr}`);
    env = await startEnv();
  });
  after(async () => {
    await env?.sb.stop();
    registry?.kill("SIGTERM");
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("pulls to <name>_<tag>.tar, lists tags, and the archive creates an app container", async () => {
    const tags = await env.api("GET", `/nodes/pve1/query-oci-repo-tags?reference=${encodeURIComponent(`127.0.0.1:${port}/demo/app`)}`);
    expect(tags.status, tags.text).to.equal(200);
    expect(tags.json.data).to.deep.equal(["1.0"]);
    const st = await env.task("POST", "/nodes/pve1/storage/local/oci-registry-pull", { reference: `127.0.0.1:${port}/demo/app:1.0` });
    expect(st).to.include({ type: "ociregistrypull", id: "app_1.0.tar", exitstatus: "OK" });
    const content = (await env.api("GET", "/nodes/pve1/storage/local/content?content=vztmpl")).json.data;
    expect(content.map((c: any) => [c.volid, c.format])).to.deep.equal([["local:vztmpl/app_1.0.tar", "tar"]]);
    const again = await env.api("POST", "/nodes/pve1/storage/local/oci-registry-pull", { form: { reference: `127.0.0.1:${port}/demo/app:1.0` } });
    expect(again.json.message).to.equal("refusing to override existing file 'app_1.0.tar'\n");
    const ct = await env.task("POST", "/nodes/pve1/lxc", { vmid: 400, ostemplate: "local:vztmpl/app_1.0.tar", rootfs: "local-lvm:1" });
    expect(ct.exitstatus).to.equal("OK");
    const cfg = (await env.api("GET", "/nodes/pve1/lxc/400/config")).json.data;
    expect(cfg).to.include({ entrypoint: "/bin/app", env: "X=1", ostype: "alpine", cmode: "console" });
  });
});
