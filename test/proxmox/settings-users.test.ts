/**
 * User names as PVE accepts them (issue 15 item 17): anything but whitespace, ':' and '/'
 * before the last '@realm', so OpenID users named by e-mail (`john@example.com@oidc`) work
 * for ticket login and in API tokens.
 */
import { expect } from "chai";
import { parseApiToken, parseSettings } from "../../provider/proxmox/settings";

const endpoint = "https://pve.example.com:8006";

describe("proxmox settings: user names with '@' (OpenID e-mail users)", () => {
  it("accepts them for password login", () => {
    const s = parseSettings({ endpoint, username: "john@example.com@oidc", password: "pw-123456" }, {});
    expect(s.auth).to.include({ kind: "password", username: "john@example.com@oidc" });
  });

  it("splits a token of such a user at the last '@' before the '!'", () => {
    const t = parseApiToken("john@example.com@oidc!ci=11111111-2222-3333-4444-555555555555");
    expect(t).to.deep.equal({ user: "john@example.com@oidc", tokenId: "john@example.com@oidc!ci", secret: "11111111-2222-3333-4444-555555555555" });
    const s = parseSettings({ endpoint, apiToken: "john@example.com@oidc!ci=11111111-2222-3333-4444-555555555555", username: "john@example.com@oidc" }, {});
    expect(s.auth.kind).to.equal("token");
  });

  it("still refuses what PVE refuses (no realm, whitespace, ':' or '/')", () => {
    for (const username of ["john", "jo hn@pve", "a:b@pve", "a/b@pve", "john@"]) {
      expect(() => parseSettings({ endpoint, username, password: "pw-123456" }, {}), username).to.throw(/must be user@realm/);
    }
  });
});
