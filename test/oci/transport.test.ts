import { expect } from "chai";
import * as fs from "node:fs";
import * as http from "node:http";
import * as path from "node:path";
import * as zlib from "node:zlib";
import { createHash } from "node:crypto";
import { buildTemplate, resolveImage } from "../../provider/oci";
import { credentialsFromDockerConfig } from "../../provider/oci/auth";
import { RegistryClient } from "../../provider/oci/registry";
import { registryApiHost } from "../../provider/oci/reference";
import { cleanupTmp, layerTar, tmpDir } from "./support";

const sha = (b: Buffer) => "sha256:" + createHash("sha256").update(b).digest("hex");

function listen(server: http.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as { port: number }).port)));
}

/**
 * A scripted registry: Basic auth, blobs redirected to a separate "storage" origin, and
 * the first blob request dropped mid-connection. Checks what a real one cannot show.
 */
describe("oci: registry transport (scripted server)", function () {
  this.timeout(30_000);
  let registry: http.Server;
  let storage: http.Server;
  let regPort: number;
  let storagePort: number;
  const blobs = new Map<string, Buffer>();
  let manifest: Buffer;
  let dropNextBlob = true;
  const storageAuthHeaders: Array<string | undefined> = [];
  let blobRequests = 0;

  before(async () => {
    const tar = await layerTar([{ name: "hello", content: "from the scripted registry\n" }]);
    const layer = zlib.gzipSync(tar);
    const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", config: { Cmd: ["/hello"] }, rootfs: { type: "layers", diff_ids: [sha(tar)] } }));
    blobs.set(sha(layer), layer);
    blobs.set(sha(config), config);
    manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.docker.distribution.manifest.v2+json",
        config: { mediaType: "application/vnd.docker.container.image.v1+json", digest: sha(config), size: config.length },
        layers: [{ mediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip", digest: sha(layer), size: layer.length }],
      }),
    );
    storage = http.createServer((req, res) => {
      storageAuthHeaders.push(req.headers.authorization);
      const digest = decodeURIComponent((req.url ?? "").slice(1));
      const b = blobs.get(digest);
      if (!b) return res.writeHead(404).end();
      res.writeHead(200, { "Content-Length": b.length }).end(b);
    });
    storagePort = await listen(storage);
    registry = http.createServer((req, res) => {
      if ((req.url ?? "").startsWith("/v2/bearer/")) {
        return res.writeHead(401, { "WWW-Authenticate": 'Bearer realm="http://token.example.invalid/token",service="s"' }).end();
      }
      if (req.headers.authorization !== "Basic " + Buffer.from("bob:hunter2-long").toString("base64")) {
        return res.writeHead(401, { "WWW-Authenticate": 'Basic realm="scripted"' }).end();
      }
      const url = req.url ?? "";
      if (url === "/v2/app/manifests/1") {
        return res.writeHead(200, { "Content-Type": "application/vnd.docker.distribution.manifest.v2+json" }).end(manifest);
      }
      const m = /^\/v2\/app\/blobs\/(sha256:[a-f0-9]{64})$/.exec(url);
      if (m) {
        blobRequests++;
        if (dropNextBlob) {
          dropNextBlob = false;
          req.socket.destroy(); // a transport error the client must retry
          return;
        }
        return res.writeHead(307, { Location: `http://127.0.0.1:${storagePort}/${encodeURIComponent(m[1])}` }).end();
      }
      res.writeHead(404, { "Content-Type": "application/json" }).end(JSON.stringify({ errors: [{ code: "MANIFEST_UNKNOWN", message: "unknown" }] }));
    });
    regPort = await listen(registry);
  });
  after(async () => {
    await new Promise((r) => registry.close(r));
    await new Promise((r) => storage.close(r));
    cleanupTmp();
  });

  it("retries a dropped connection and follows blob redirects without sending credentials there", async () => {
    const client = new RegistryClient(`127.0.0.1:${regPort}`, { credentials: { username: "bob", password: "hunter2-long" } });
    const r = await buildTemplate({ source: `127.0.0.1:${regPort}/app:1`, cacheDir: tmpDir("cache-"), registryClient: client });
    expect(blobRequests).to.be.greaterThan(2); // config + layer + the retried one
    expect(storageAuthHeaders.length).to.be.greaterThan(0);
    expect(storageAuthHeaders.every((h) => h === undefined)).to.equal(true);
    expect(r.metadata.cmd).to.deep.equal(["/hello"]);
    expect(client.stats.blobDownloads).to.equal(2);
  });

  it("parallel builds sharing a cache both succeed with identical output", async () => {
    const cacheDir = tmpDir("cache-");
    const creds = { username: "bob", password: "hunter2-long" };
    const [a, b] = await Promise.all([
      buildTemplate({ source: `127.0.0.1:${regPort}/app:1`, cacheDir, credentials: creds, outFile: path.join(tmpDir(), "a.tar.gz") }),
      buildTemplate({ source: `127.0.0.1:${regPort}/app:1`, cacheDir, credentials: creds, outFile: path.join(tmpDir(), "b.tar.gz") }),
    ]);
    expect(a.sha256).to.equal(b.sha256);
    expect(fs.readFileSync(a.file)).to.deep.equal(fs.readFileSync(b.file));
    expect(fs.readdirSync(path.join(cacheDir, "tmp"))).to.deep.equal([]);
  });

  it("refuses to send credentials to a plain-HTTP token realm on another host", async () => {
    try {
      await resolveImage(`127.0.0.1:${regPort}/bearer:1`, { credentials: { username: "bob", password: "hunter2-long" }, retries: 0 });
      throw new Error("accepted");
    } catch (err) {
      expect((err as { code?: string }).code).to.equal("INVALID_OPTION");
      expect((err as Error).message).to.include("token.example.invalid").and.not.include("hunter2-long");
    }
    expect(registryApiHost("docker.io")).to.equal("registry-1.docker.io");
  });

  it("a 404 carries the registry's error code", async () => {
    try {
      await resolveImage(`127.0.0.1:${regPort}/app:missing`, { credentials: { username: "bob", password: "hunter2-long" } });
      throw new Error("accepted");
    } catch (err) {
      expect((err as Error).message).to.include("MANIFEST_UNKNOWN").and.include(`127.0.0.1:${regPort}`);
    }
  });

  it("docker config credHelpers run docker-credential-<name> get", async () => {
    const bin = tmpDir("helper-");
    fs.writeFileSync(path.join(bin, "docker-credential-fake"), '#!/bin/sh\nread server\necho "{\\"ServerURL\\":\\"$server\\",\\"Username\\":\\"helper-user\\",\\"Secret\\":\\"helper-secret\\"}"\n', { mode: 0o755 });
    const cfg = path.join(bin, "config.json");
    fs.writeFileSync(cfg, JSON.stringify({ credHelpers: { "reg.example": "fake" } }));
    const prev = process.env.PATH;
    process.env.PATH = `${bin}:${prev}`;
    try {
      expect(await credentialsFromDockerConfig("reg.example", cfg)).to.deep.equal({ username: "helper-user", password: "helper-secret" });
    } finally {
      process.env.PATH = prev;
    }
  });
});
