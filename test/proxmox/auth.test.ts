import { expect } from "chai";
import type { SandboxHandle } from "../../sandbox";
import { PveAuthenticationError, PvePermissionError } from "../../provider/proxmox";
import { captureLogger } from "../../provider/logging";
import { sandbox, ticketClient, tokenClient, ensureTemplate, ctConfig } from "./support/sandbox";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function rejects<T extends Error>(p: Promise<unknown>, cls: new (...a: any[]) => T): Promise<T> {
  try {
    await p;
  } catch (e) {
    expect(e, String(e)).to.be.instanceOf(cls);
    return e as T;
  }
  throw new Error(`expected ${cls.name}`);
}

describe("auth against the sandbox: token, ticket + CSRF, renewal, 401/403", function () {
  let sb: SandboxHandle;
  before(async () => {
    sb = await sandbox({ ticketLifetimeSec: 3 });
  });
  after(async () => sb.stop());
  beforeEach(async () => {
    await sb.admin.clearFaults();
    await sb.admin.resetCounters();
  });

  it("API token: header auth on reads and writes, no login", async () => {
    const c = tokenClient(sb);
    await ensureTemplate(c);
    const { vmid } = await c.createContainer({ node: "pve1", config: ctConfig() });
    const cfg = await c.lxc.getConfig("pve1", vmid);
    await c.lxc.updateConfig("pve1", vmid, { set: { description: "token write" }, digest: cfg.digest });
    expect((await c.lxc.getConfig("pve1", vmid)).description).to.match(/token write/);
    const n = (await sb.admin.counters()).requests;
    expect(n["POST /access/ticket"] ?? 0).to.equal(0);
    c.close();
  });

  it("a wrong token secret fails with PveAuthenticationError naming the setting, secret-free", async () => {
    const bad = sb.apiToken.replace(/=[^=]+$/, "=00000000-0000-0000-0000-000000000000");
    const c = tokenClient(sb, {}, bad);
    const e = await rejects(c.cluster.nodes(), PveAuthenticationError);
    expect(e.status).to.equal(401);
    expect(e.message).to.include("PROXMOX_VE_API_TOKEN").and.not.to.include("00000000-0000-0000-0000-000000000000");
    c.close();
  });

  it("ticket: logs in once, sends CSRFPreventionToken on writes (the sandbox refuses writes without it)", async () => {
    const c = ticketClient(sb);
    await ensureTemplate(c);
    const { vmid } = await c.createContainer({ node: "pve1", config: ctConfig() });
    await c.lxc.updateConfig("pve1", vmid, { set: { memory: 384 } });
    await c.lxc.startAndWait("pve1", vmid);
    expect((await c.lxc.status("pve1", vmid)).status).to.equal("running");
    const n = (await sb.admin.counters()).requests;
    expect(n["POST /access/ticket"]).to.equal(1);
    c.close();
  });

  it("ticket renewal before the lifetime ends (renewed with the ticket itself)", async () => {
    // Sandbox tickets live 3 s here; renew after 1 s.
    const c = ticketClient(sb, { ticketRenewAfterMs: 1000 });
    await c.cluster.nodes();
    await sleep(1200);
    await c.cluster.nodes();
    await sleep(1200);
    await c.cluster.nodes();
    await sleep(1200);
    // 3.6 s after the first login: without renewal the first ticket would be dead now.
    await c.cluster.nodes();
    const n = (await sb.admin.counters()).requests;
    expect(n["POST /access/ticket"]).to.equal(4);
    c.close();
  });

  it("re-login once on a 401 (expired ticket), then fail if it keeps failing", async () => {
    const cap = captureLogger({ level: "debug" });
    const c = ticketClient(sb, { logger: cap.logger });
    await c.cluster.nodes();
    await sb.admin.expireTickets();
    // The sandbox rejects tickets minted before the next full second.
    await sleep(1100);
    await c.cluster.nodes(); // 401 → login → retried
    expect((await sb.admin.counters()).requests["POST /access/ticket"]).to.equal(2);
    expect(cap.text()).not.to.include(sb.password);
    expect(cap.text()).not.to.match(/PVE:root@pam:[0-9A-F]{8}::/);

    // 401 twice in a row: one re-login, then a clear failure (no login loop).
    await sb.admin.resetCounters();
    await sb.admin.addFault({ method: "GET", path: "/nodes", action: "status", status: 401, message: "Authentication failed!", times: 2 });
    const e401 = await rejects(c.cluster.nodes(), PveAuthenticationError);
    expect(e401.status).to.equal(401);
    const n = (await sb.admin.counters()).requests;
    expect(n["POST /access/ticket"]).to.equal(1);
    expect(n["GET /nodes"]).to.equal(2);
    c.close();

    const wrong = ticketClient(sb, {}, { username: "root@pam", password: "definitely-wrong" });
    const e = await rejects(wrong.cluster.nodes(), PveAuthenticationError);
    expect(e.message).to.include("proxmox:username/proxmox:password").and.not.to.include("definitely-wrong");
    wrong.close();
  });

  it("403 names the missing privilege, the ACL path and privsep for tokens", async () => {
    const root = tokenClient(sb);
    await ensureTemplate(root);
    const { vmid } = await root.createContainer({ node: "pve1", config: ctConfig() });
    await sb.admin.createUser("auditor@pve", { password: "auditor-pass" });
    const tok = await sb.admin.createToken("auditor@pve", "ro", { privsep: 1 });
    await sb.admin.setAcl({ path: "/", roles: ["PVEAuditor"], users: ["auditor@pve"] });
    await sb.admin.setAcl({ path: "/", roles: ["PVEAuditor"], tokens: [tok.fullTokenid] });
    const c = tokenClient(sb, {}, tok.apiToken);
    expect((await c.lxc.status("pve1", vmid)).vmid).to.equal(vmid);
    const e = await rejects(c.lxc.start("pve1", vmid), PvePermissionError);
    expect(e.status).to.equal(403);
    expect(e.aclPath).to.equal(`/vms/${vmid}`);
    expect(e.privileges).to.deep.equal(["VM.PowerMgmt"]);
    expect(e.message).to.include(`the token ${tok.fullTokenid} needs VM.PowerMgmt on /vms/${vmid}`).and.include("privilege separation");
    c.close();
    root.close();
  });
});
