import { expect } from "chai";
import { PveAuthenticationError, PveClient, parseSettings } from "../../provider/proxmox";
import { captureLogger } from "../../provider/logging";
import { certFingerprint, startTinyServer, type TinyServer } from "./support/tinyServer";

/**
 * Two-factor login (BEHAVIOR.md 2.1: `NeedTFA: 1` instead of `cap`, then a second POST
 * /access/ticket with `tfa-challenge`). The sandbox has no TFA users, so a loopback server
 * answers just these two calls.
 */
describe("ticket login with a one-time code (proxmox:otp)", () => {
  let s: TinyServer;
  const PARTIAL = "PVE:!tfa!root@pam:6B000000::cGFydGlhbA==";
  const FULL = "PVE:root@pam:6B000001::ZnVsbA==";
  before(async () => {
    s = await startTinyServer("self-a", (req, res) => {
      const reply = (status: number, data: unknown) => {
        res.writeHead(status, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ data }));
      };
      const p = new URLSearchParams(req.body);
      if (req.method === "POST" && req.url === "/api2/json/access/ticket") {
        if (p.get("tfa-challenge") === PARTIAL && p.get("password") === "totp:123456") return reply(200, { username: "root@pam", ticket: FULL, CSRFPreventionToken: "6B000001:Y3NyZg" });
        if (p.get("password") === "pw-secret-1") return reply(200, { username: "root@pam", ticket: PARTIAL, CSRFPreventionToken: "x", NeedTFA: 1 });
        res.writeHead(401, "authentication failure");
        return res.end();
      }
      if (req.headers.cookie === `PVEAuthCookie=${FULL}`) return reply(200, [{ node: "pve1", status: "online" }]);
      res.writeHead(401, "No ticket");
      res.end();
    });
  });
  after(() => s.stop());

  const client = (otp?: string) =>
    PveClient.fromSettings(parseSettings({ endpoint: s.endpoint, username: "root@pam", password: "pw-secret-1", otp, tlsFingerprint: certFingerprint("self-a") }, {}), {
      schemaVersion: "9.1",
      logger: captureLogger({ level: "warn" }).logger,
    });

  it("answers the TFA challenge with the configured code", async () => {
    const c = client("123456");
    expect((await c.cluster.nodes())[0].node).to.equal("pve1");
    const logins = s.received.filter((r) => r.url.endsWith("/access/ticket"));
    expect(new URLSearchParams(logins[0].body).get("otp")).to.equal("123456");
    expect(new URLSearchParams(logins[1].body).get("tfa-challenge")).to.equal(PARTIAL);
    c.close();
  });

  it("without a code: a clear error naming proxmox:otp", async () => {
    const c = client();
    const e = await c.cluster.nodes().then(() => undefined, (err) => err);
    expect(e).to.be.instanceOf(PveAuthenticationError);
    expect((e as Error).message).to.include("proxmox:otp").and.include("PROXMOX_VE_OTP");
    c.close();
  });
});
