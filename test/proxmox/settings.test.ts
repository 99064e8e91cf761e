import { expect } from "chai";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parseSettings, PveSettingsError } from "../../provider/proxmox/settings";
import { scrubSecrets } from "../../provider/logging";
import { certPem } from "./support/tinyServer";

const TOKEN = "root@pam!pulumi=0b6f6c62-5e0a-4f0e-9c55-3a2f2f0d1c11";

function settingsError(fn: () => unknown): PveSettingsError {
  try {
    fn();
  } catch (e) {
    expect(e).to.be.instanceOf(PveSettingsError);
    return e as PveSettingsError;
  }
  throw new Error("expected a PveSettingsError");
}

describe("proxmox settings (config + PROXMOX_VE_* env)", () => {
  it("accepts the endpoint forms and defaults the port to 8006", () => {
    for (const [raw, want] of [
      ["https://pve.example.com", "https://pve.example.com:8006/api2/json"],
      ["https://pve.example.com:8006", "https://pve.example.com:8006/api2/json"],
      ["https://pve.example.com:443/api2/json", "https://pve.example.com:443/api2/json"],
      ["https://pve.example.com/api2/json/", "https://pve.example.com:8006/api2/json"],
      ["https://[fd00::1]:8006", "https://[fd00::1]:8006/api2/json"],
    ]) {
      expect(parseSettings({ endpoint: raw, apiToken: TOKEN }, {}).baseUrl, raw).to.equal(want);
    }
  });

  it("rejects http://, odd paths and embedded credentials naming key and env var", () => {
    for (const raw of ["http://pve:8006", "https://pve:8006/foo", "https://u:p@pve", "not a url"]) {
      const e = settingsError(() => parseSettings({ endpoint: raw, apiToken: TOKEN }, {}));
      expect(e.message).to.include("proxmox:endpoint").and.include("PROXMOX_VE_ENDPOINT");
    }
  });

  it("falls back to env vars compatible with bpg's provider", () => {
    const s = parseSettings({}, { PROXMOX_VE_ENDPOINT: "https://h", PROXMOX_VE_API_TOKEN: TOKEN, PROXMOX_VE_TLS_FINGERPRINT: "ab".repeat(32) });
    expect(s.auth).to.deep.include({ kind: "token", tokenId: "root@pam!pulumi", user: "root@pam" });
    expect(s.tls.fingerprint).to.equal(Array(32).fill("AB").join(":"));
    const p = parseSettings({}, { PROXMOX_VE_ENDPOINT: "https://h", PROXMOX_VE_USERNAME: "root@pam", PROXMOX_VE_PASSWORD: "pw-secret", PROXMOX_VE_OTP: "123456" });
    expect(p.auth).to.deep.equal({ kind: "password", username: "root@pam", password: "pw-secret", otp: "123456" });
  });

  it("config wins over env; credentials come from one source as a unit", () => {
    const s = parseSettings({ endpoint: "https://cfg", apiToken: TOKEN }, { PROXMOX_VE_ENDPOINT: "https://env", PROXMOX_VE_PASSWORD: "stale", PROXMOX_VE_USERNAME: "x@pam" });
    expect(s.host).to.equal("cfg");
    expect(s.auth.kind).to.equal("token");
  });

  it("one clear error per problem, naming config key and env var", () => {
    const cases: Array<[Record<string, string>, string[], RegExp]> = [
      [{ apiToken: TOKEN }, ["endpoint"], /proxmox:endpoint \(env PROXMOX_VE_ENDPOINT\)/],
      [{ endpoint: "https://h" }, ["apiToken", "username", "password"], /No Proxmox VE credentials/],
      [{ endpoint: "https://h", apiToken: TOKEN, password: "x" }, ["apiToken", "password"], /Use one/],
      [{ endpoint: "https://h", apiToken: "root@pam=abc" }, ["apiToken"], /user@realm!tokenid=secret/],
      [{ endpoint: "https://h", username: "root@pam" }, ["password"], /PROXMOX_VE_PASSWORD/],
      [{ endpoint: "https://h", username: "root", password: "pw" }, ["username"], /user@realm/],
      [{ endpoint: "https://h", apiToken: TOKEN, tlsFingerprint: "12:34" }, ["tlsFingerprint"], /64 hex digits/],
      [{ endpoint: "https://h", apiToken: TOKEN, insecure: "true", tlsFingerprint: "ab".repeat(32) }, ["insecure", "tlsFingerprint"], /defeats/],
      [{ endpoint: "https://h", apiToken: TOKEN, insecure: "maybe" }, ["insecure"], /not a boolean/],
      [{ endpoint: "https://h", apiToken: TOKEN, caCert: "/nonexistent/ca.pem" }, ["caCert"], /neither PEM text nor a readable file/],
      [{ endpoint: "https://h", apiToken: TOKEN, otp: "123456" }, ["otp"], /only applies/],
    ];
    for (const [cfg, keys, re] of cases) {
      const e = settingsError(() => parseSettings(cfg, {}));
      expect(e.keys, JSON.stringify(cfg)).to.deep.equal(keys);
      expect(e.message).to.match(re);
      for (const k of keys) expect(e.message).to.include(`proxmox:${k}`);
    }
  });

  it("never echoes a malformed token and registers secrets for scrubbing", () => {
    const bad = "root@pam:nosecretshape-SUPERSECRET";
    const e = settingsError(() => parseSettings({ endpoint: "https://h", apiToken: bad }, {}));
    expect(e.message).not.to.include("SUPERSECRET");
    parseSettings({ endpoint: "https://h", apiToken: TOKEN }, {});
    expect(scrubSecrets(`x ${TOKEN.split("=")[1]} y`)).not.to.include(TOKEN.split("=")[1]);
  });

  it("caCert accepts PEM text or a file path", () => {
    const pem = certPem("ca");
    expect(parseSettings({ endpoint: "https://h", apiToken: TOKEN, caCert: pem }, {}).tls.caCert).to.equal(pem);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pve-ca-"));
    try {
      const f = path.join(dir, "ca.pem");
      fs.writeFileSync(f, pem);
      expect(parseSettings({ endpoint: "https://h", apiToken: TOKEN, caCert: f }, {}).tls.caCert).to.equal(pem);
      fs.writeFileSync(f, "not a cert");
      expect(settingsError(() => parseSettings({ endpoint: "https://h", apiToken: TOKEN, caCert: f }, {})).message).to.include("does not contain a PEM certificate");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
