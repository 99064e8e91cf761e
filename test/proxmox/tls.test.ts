import { expect } from "chai";
import { PveClient, PveTlsError, parseSettings } from "../../provider/proxmox";
import { resetInsecureWarning } from "../../provider/proxmox/tlsAgent";
import { captureLogger } from "../../provider/logging";
import { certFingerprint, certPem, startTinyServer, type TinyServer } from "./support/tinyServer";

const SECRET = "7d1f0c55-0000-4a4a-9b9b-123456789abc";
const TOKEN = `root@pam!tls=${SECRET}`;

function client(server: TinyServer, extra: Record<string, string>, logger = captureLogger({ level: "debug" }).logger) {
  return PveClient.fromSettings(parseSettings({ endpoint: server.endpoint, apiToken: TOKEN, ...extra }, {}), {
    logger,
    schemaVersion: "9.1",
    retry: { maxRefusedRetries: 0, maxRetries: 0 },
  });
}

async function expectTlsError(p: Promise<unknown>, re: RegExp): Promise<PveTlsError> {
  try {
    await p;
  } catch (e) {
    expect(e).to.be.instanceOf(PveTlsError);
    expect((e as Error).message).to.match(re);
    return e as PveTlsError;
  }
  throw new Error("expected a PveTlsError");
}

describe("TLS: verification, CA, fingerprint pinning, insecure", () => {
  let servers: TinyServer[] = [];
  afterEach(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    servers = [];
  });
  const start = async (cert: "self-a" | "leaf") => {
    const s = await startTinyServer(cert);
    servers.push(s);
    return s;
  };

  it("verifies by default: a self-signed certificate is refused", async () => {
    const s = await start("self-a");
    const c = client(s, {});
    await expectTlsError(c.version(), /TLS check failed.*self[- ]signed/i);
    expect(s.received).to.have.length(0);
    c.close();
  });

  it("accepts a self-signed certificate whose SHA-256 fingerprint matches the pin", async () => {
    const s = await start("self-a");
    // Lower-case without colons is accepted and normalised.
    const c = client(s, { tlsFingerprint: certFingerprint("self-a").replace(/:/g, "").toLowerCase() });
    expect((await c.version()).release).to.equal("9.1");
    expect(s.received[0].headers.authorization).to.equal(`PVEAPIToken=${TOKEN}`);
    c.close();
  });

  it("refuses a certificate that does not match the pin, before sending any request byte", async () => {
    const s = await start("self-a");
    const c = client(s, { tlsFingerprint: certFingerprint("self-b") });
    const e = await expectTlsError(c.version(), /does not match the pinned/);
    expect(e.message).to.include(certFingerprint("self-a")).and.include(certFingerprint("self-b"));
    expect(e.message).not.to.include(SECRET);
    expect(s.received, "no HTTP request may reach a server that failed the pin").to.have.length(0);
    c.close();
  });

  it("trusts a custom CA (PEM) and refuses its leaf without it", async () => {
    const s = await start("leaf");
    const without = client(s, {});
    await expectTlsError(without.version(), /TLS check failed/);
    without.close();
    const withCa = client(s, { caCert: certPem("ca") });
    expect((await withCa.version()).version).to.equal("9.1.1");
    withCa.close();
  });

  it("insecure is opt-in and warns once per process", async () => {
    resetInsecureWarning();
    const s = await start("self-a");
    const cap = captureLogger({ level: "debug" });
    const c1 = client(s, { insecure: "true" }, cap.logger);
    const c2 = client(s, { insecure: "1" }, cap.logger);
    await c1.version();
    await c2.version();
    const warnings = cap.records.filter((r) => r.level === "warn" && /verification is DISABLED/.test(r.msg));
    expect(warnings).to.have.length(1);
    // Debug request logs carry the endpoint template and never the token.
    expect(cap.records.some((r) => r.msg === "pve api call" && r.endpoint === "/version" && r.status === 200)).to.equal(true);
    expect(cap.text()).not.to.include(SECRET);
    c1.close();
    c2.close();
  });
});
