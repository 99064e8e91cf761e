/**
 * provider/proxmox/http.ts, the transport's HTTPS exchange (node:https; it replaced axios):
 * what retry.ts and the error mapping rely on, against a loopback HTTPS server.
 */
import { expect } from "chai";
import * as https from "node:https";
import * as zlib from "node:zlib";
import { createHttpClient } from "../../provider/proxmox/http";
import { transportKind } from "../../provider/proxmox/retry";
import { startTinyServer, type Handler, type TinyServer } from "./support/tinyServer";

describe("http.ts: one HTTPS exchange", function () {
  let server: TinyServer | undefined;
  const agent = new https.Agent({ rejectUnauthorized: false, keepAlive: true });
  afterEach(async () => server?.stop());
  after(() => agent.destroy());

  const start = async (handler: Handler) => {
    server = await startTinyServer("self-a", handler);
    return createHttpClient(`${server.endpoint}/api2/json`, agent, 1024);
  };

  it("sends the form body with its length below the base URL and returns any status as an answer, redirects included", async function () {
    const http = await start((req, res) => {
      res.writeHead(req.method === "POST" ? 500 : 302, "boom reason", { Location: "https://example.invalid/", "Content-Type": "text/plain" });
      res.end("worker failed");
    });
    const posted = await http.request({ method: "POST", url: "/nodes/pve1/lxc", data: "vmid=100&hostname=a", headers: { Authorization: "PVEAPIToken=x" }, timeout: 5000 });
    expect(posted).to.include({ status: 500, statusText: "boom reason", data: "worker failed" });
    const got = await http.request({ method: "GET", url: "/version?x=1", headers: {}, timeout: 5000 });
    expect(got.status).to.equal(302);
    const [post, get] = server!.received;
    expect(post).to.include({ method: "POST", url: "/api2/json/nodes/pve1/lxc", body: "vmid=100&hostname=a" });
    expect(post.headers["content-length"]).to.equal("19");
    expect(post.headers.authorization).to.equal("PVEAPIToken=x");
    expect(get).to.include({ method: "GET", url: "/api2/json/version?x=1" });
  });

  it("inflates a gzip answer", async function () {
    const http = await start((_req, res) => {
      res.writeHead(200, { "Content-Encoding": "gzip" });
      res.end(zlib.gzipSync(JSON.stringify({ data: "zipped" })));
    });
    expect((await http.request({ method: "GET", url: "/x", headers: {}, timeout: 5000 })).data).to.equal('{"data":"zipped"}');
  });

  it("a silent server times out as ECONNABORTED, which retry.ts treats as ambiguous (may have acted)", async function () {
    const http = await start(() => undefined);
    const err = (await http.request({ method: "POST", url: "/x", data: "a=1", headers: {}, timeout: 150 }).catch((e) => e)) as { code?: string; message: string };
    expect(err.code).to.equal("ECONNABORTED");
    expect(err.message).to.contain("timeout of 150ms exceeded");
    expect(transportKind(err)).to.equal("ambiguous");
  });

  it("refuses an answer over the size cap, and a refused connection is 'not sent'", async function () {
    const http = await start((_req, res) => res.end("x".repeat(5000)));
    const big = (await http.request({ method: "GET", url: "/x", headers: {}, timeout: 5000 }).catch((e) => e)) as { code?: string };
    expect(big.code).to.equal("ERR_BAD_RESPONSE");
    const port = new URL(server!.endpoint).port;
    await server!.stop();
    server = undefined;
    const refused = (await createHttpClient(`https://127.0.0.1:${port}/api2/json`, agent).request({ method: "GET", url: "/x", headers: {}, timeout: 5000 }).catch((e) => e)) as { code?: string };
    expect(refused.code).to.equal("ECONNREFUSED");
    expect(transportKind(refused)).to.equal("not-sent");
  });
});
