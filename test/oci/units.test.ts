import { expect } from "chai";
import * as fs from "node:fs";
import * as path from "node:path";
import { Readable } from "node:stream";
import { OciError, parsePlatform, parseReference, parseSource } from "../../provider/oci";
import { credentialsFromDockerConfig, parseWwwAuthenticate } from "../../provider/oci/auth";
import { selectPlatform } from "../../provider/oci/platform";
import { TAR_END, TarHeader, encodeHeader, padding, readTar } from "../../provider/oci/tar";
import { cleanupTmp, layerTar, tmpDir } from "./support";

describe("oci: references and sources", () => {
  const cases: Array<[string, string, string, string | undefined, string | undefined]> = [
    ["nginx", "docker.io", "library/nginx", "latest", undefined],
    ["nginx:1.27", "docker.io", "library/nginx", "1.27", undefined],
    ["user/app", "docker.io", "user/app", "latest", undefined],
    ["docker.io/nginx", "docker.io", "library/nginx", "latest", undefined],
    ["index.docker.io/library/nginx:1", "docker.io", "library/nginx", "1", undefined],
    ["localhost/x", "localhost", "x", "latest", undefined],
    ["localhost:5000/x", "localhost:5000", "x", "latest", undefined],
    ["127.0.0.1:5000/a/b/c:v1", "127.0.0.1:5000", "a/b/c", "v1", undefined],
    ["ghcr.io/org/app@sha256:" + "a".repeat(64), "ghcr.io", "org/app", undefined, "sha256:" + "a".repeat(64)],
    ["quay.io/org/app:v2@sha256:" + "b".repeat(64), "quay.io", "org/app", "v2", "sha256:" + "b".repeat(64)],
  ];
  for (const [input, registry, repository, tag, digest] of cases) {
    it(`normalises ${input}`, () => {
      expect(parseReference(input)).to.deep.equal({ registry, repository, tag, digest });
    });
  }

  it("rejects invalid references with the reason", () => {
    for (const [bad, why] of [
      ["Nginx", "repository"],
      ["nginx:bad tag", "tag"],
      ["nginx@sha256:xyz", "digest"],
      ["", "empty"],
    ]) {
      try {
        parseReference(bad);
        throw new Error(`accepted ${bad}`);
      } catch (err) {
        expect(err, bad).to.be.instanceOf(OciError);
        expect((err as Error).message, bad).to.include(why);
      }
    }
  });

  it("parses skopeo-style transports", () => {
    expect(parseSource("docker://alpine:3.20")).to.deep.equal({ transport: "docker", ref: { registry: "docker.io", repository: "library/alpine", tag: "3.20", digest: undefined } });
    expect(parseSource("oci:/x/layout:v1")).to.deep.equal({ transport: "oci", dir: "/x/layout", tag: "v1" });
    expect(parseSource("oci:/x/layout")).to.deep.equal({ transport: "oci", dir: "/x/layout", tag: undefined });
    expect(parseSource("oci-archive:/x/a.tar:t")).to.deep.equal({ transport: "oci-archive", file: "/x/a.tar", tag: "t" });
    expect(parseSource("docker-archive:/x/d.tar")).to.deep.equal({ transport: "docker-archive", file: "/x/d.tar", ref: undefined });
    expect(parseSource("localhost:5000/x").transport).to.equal("docker");
    expect(() => parseSource("http://example/x")).to.throw(OciError, "unsupported transport");
  });

  it("parses platforms and selects from an index", () => {
    expect(parsePlatform("linux/amd64")).to.deep.equal({ os: "linux", architecture: "amd64" });
    expect(parsePlatform("linux/aarch64")).to.deep.equal({ os: "linux", architecture: "arm64" });
    expect(parsePlatform("linux/arm/v7")).to.deep.equal({ os: "linux", architecture: "arm", variant: "v7" });
    expect(() => parsePlatform("amd64")).to.throw(OciError, "os/arch");
    const entries = [
      { id: 1, platform: { os: "linux", architecture: "arm", variant: "v6" } },
      { id: 2, platform: { os: "linux", architecture: "arm", variant: "v7" } },
      { id: 3, platform: { os: "linux", architecture: "arm64", variant: "v8" } },
      { id: 4, platform: { os: "unknown", architecture: "unknown" } },
    ];
    expect(selectPlatform(entries, { os: "linux", architecture: "arm", variant: "v7" })?.id).to.equal(2);
    expect(selectPlatform(entries, { os: "linux", architecture: "arm64" })?.id).to.equal(3);
    expect(selectPlatform(entries, { os: "linux", architecture: "amd64" })).to.equal(undefined);
  });
});

describe("oci: auth parsing", () => {
  after(() => cleanupTmp());

  it("parses WWW-Authenticate challenges with quoted commas", () => {
    const c = parseWwwAuthenticate('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"');
    expect(c).to.deep.equal([{ scheme: "bearer", params: { realm: "https://auth.example/token", service: "registry.example", scope: "repository:a/b:pull,push" } }]);
    expect(parseWwwAuthenticate('Basic realm="Registry Realm"')).to.deep.equal([{ scheme: "basic", params: { realm: "Registry Realm" } }]);
  });

  it("reads docker config auths (auth and username/password forms, docker.io key)", async () => {
    const dir = tmpDir("dcfg-");
    const file = path.join(dir, "config.json");
    fs.writeFileSync(
      file,
      JSON.stringify({
        auths: {
          "https://index.docker.io/v1/": { auth: Buffer.from("hub:pw:with:colons").toString("base64") },
          "reg.example:5000": { username: "u", password: "p" },
        },
      }),
    );
    expect(await credentialsFromDockerConfig("docker.io", file)).to.deep.equal({ username: "hub", password: "pw:with:colons" });
    expect(await credentialsFromDockerConfig("reg.example:5000", dir)).to.deep.equal({ username: "u", password: "p" });
    expect(await credentialsFromDockerConfig("other.example", file)).to.equal(undefined);
    fs.writeFileSync(file, "{not json");
    try {
      await credentialsFromDockerConfig("docker.io", file);
      throw new Error("accepted invalid JSON");
    } catch (err) {
      expect((err as Error).message).to.include(file).and.include("JSON");
    }
  });
});

describe("oci: tar codec", () => {
  const base: TarHeader = { name: "", type: "file", mode: 0o644, uid: 0, gid: 0, uname: "", gname: "", size: 0, mtime: 1_700_000_000, linkname: "", devmajor: 0, devminor: 0 };

  async function roundtrip(entries: Array<{ h: TarHeader; body?: Buffer }>): Promise<Array<{ h: TarHeader; body: Buffer }>> {
    const parts: Buffer[] = [];
    for (const e of entries) {
      parts.push(encodeHeader({ ...e.h, size: e.body?.length ?? 0 }));
      if (e.body) parts.push(e.body, Buffer.alloc(padding(e.body.length)));
    }
    parts.push(TAR_END);
    const all = Buffer.concat(parts);
    // feed in odd-sized chunks to exercise the reader's buffering
    const chunks: Buffer[] = [];
    for (let i = 0; i < all.length; i += 777) chunks.push(all.subarray(i, i + 777));
    const out = [];
    for await (const e of readTar(Readable.from(chunks))) {
      const body: Buffer[] = [];
      for await (const c of e.body()) body.push(Buffer.from(c));
      out.push({ h: e.header, body: Buffer.concat(body) });
    }
    return out;
  }

  it("keeps binary xattr values, long names and link targets, big ids", async () => {
    const cap = Buffer.from([0x01, 0x00, 0x00, 0x02, 0xff, 0xfe, 0x00, 0x80, 0x0a, 0x3d]);
    const longName = "d/".repeat(120) + "file-with-a-long-name";
    const longLink = "t/".repeat(80) + "target";
    const [a, b, c] = await roundtrip([
      { h: { ...base, name: "./bin/ping", mode: 0o4755, xattrs: new Map([["security.capability", cap]]) }, body: Buffer.from("ELF") },
      { h: { ...base, name: longName, uid: 5_000_000, gid: 3_000_000 }, body: Buffer.alloc(1000, 7) },
      { h: { ...base, name: "l", type: "symlink", linkname: longLink } },
    ]);
    expect(a.h.xattrs?.get("security.capability")).to.deep.equal(cap);
    expect(a.h.mode).to.equal(0o4755);
    expect(a.body.toString()).to.equal("ELF");
    expect(b.h.name).to.equal(longName);
    expect([b.h.uid, b.h.gid]).to.deep.equal([5_000_000, 3_000_000]);
    expect(b.body).to.deep.equal(Buffer.alloc(1000, 7));
    expect(c.h.linkname).to.equal(longLink);
  });

  it("reads what an independent encoder (tar-stream) wrote, including GNU/pax long names", async () => {
    const name = "x/".repeat(90) + "end";
    const tar = await layerTar([
      { name, content: "body" },
      { name: "dir/", type: "dir", mode: 0o1777 },
      { name: "hl", type: "link", linkname: name },
    ]);
    const got = [];
    for await (const e of readTar(Readable.from([tar]))) got.push([e.header.name, e.header.type, e.header.mode.toString(8), e.header.linkname]);
    expect(got).to.deep.equal([
      [name, "file", "644", ""],
      ["dir/", "dir", "1777", ""],
      ["hl", "link", "644", name],
    ]);
  });

  it("rejects a corrupt header", async () => {
    const tar = await layerTar([{ name: "a", content: "x" }]);
    tar[0] ^= 0xff;
    try {
      for await (const _ of readTar(Readable.from([tar]))) {
        // reading
      }
      throw new Error("accepted");
    } catch (err) {
      expect((err as Error).message).to.include("checksum");
    }
  });
});
