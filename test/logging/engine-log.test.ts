/**
 * Warnings reach users as the engine's own warnings when the provider runs in a
 * dynamic-provider host (its first argument is the engine's address), else as a stderr line;
 * secrets never pass either way.
 */
import { expect } from "chai";
import { engineAddress, resetEngineLink, warnUser } from "../../provider/logging/engineLog";
import { clearRegisteredSecrets, registerSecret } from "../../provider/logging/secrets";

describe("user warnings (engine Log RPC, stderr fallback)", () => {
  afterEach(() => {
    resetEngineLink(undefined);
    clearRegisteredSecrets();
  });

  it("finds the engine address only in a dynamic-provider host", () => {
    expect(engineAddress(["node", "/p/node_modules/@pulumi/pulumi/cmd/dynamic-provider/index.js", "127.0.0.1:40123"])).to.equal("127.0.0.1:40123");
    expect(engineAddress(["node", "/p/node_modules/@pulumi/pulumi/cmd/dynamic-provider", "localhost:5"])).to.equal("localhost:5");
    expect(engineAddress(["node", "/repo/node_modules/.bin/mocha", "127.0.0.1:40123"])).to.equal(undefined);
    expect(engineAddress(["node", "/p/cmd/dynamic-provider/index.js", "--flag"])).to.equal(undefined);
    expect(engineAddress(["node", "/p/cmd/dynamic-provider/index.js"])).to.equal(undefined);
  });

  it("in a provider host: one engine warning naming the resource, nothing on stderr, secrets scrubbed", async () => {
    const sent: string[] = [];
    resetEngineLink({ log: async (m) => void sent.push(m) });
    registerSecret("hunter2-token");
    const lines: string[] = [];
    await warnUser("Container web", "no address on eth0 (token hunter2-token)", (l) => lines.push(l));
    expect(sent).to.deep.equal(["Container web: no address on eth0 (token [REDACTED])"]);
    expect(lines).to.deep.equal([]);
  });

  it("when the engine refuses the call, or outside a host: a [proxmox] warning line instead", async () => {
    resetEngineLink({ log: async () => Promise.reject(new Error("unavailable")) });
    const lines: string[] = [];
    await warnUser("Snapshot s1", "stops the running container hard", (l) => lines.push(l));
    resetEngineLink(null);
    await warnUser("Template t", "changed on the storage", (l) => lines.push(l));
    expect(lines).to.deep.equal(["[proxmox] Snapshot s1: warning: stops the running container hard\n", "[proxmox] Template t: warning: changed on the storage\n"]);
  });
});
