/**
 * Smoke e2e: the Noop resource through the real Pulumi CLI and engine (file backend, no
 * network). Also checks the loader design: small `__provider` in state, secret outputs,
 * stack config delivered to `configure`, and edited handler code taking effect on the next
 * up/destroy without touching state.
 */
import { expect } from "chai";
import * as fs from "node:fs";
import * as path from "node:path";
import { execFileSync } from "node:child_process";
import { EXPECTED_PULUMI_VERSION, pulumiPath, pulumiVersion } from "../support/cli";
import {
  changedResources,
  describeChanges,
  findResource,
  hasNoChanges,
  opFor,
  PulumiStack,
  resourceSteps,
  StackExport,
} from "../support/pulumi";

const SLOW = 10 * 60 * 1000;
const SECRET_MARKER_KEY = "4dabf18193072939515e22adb298388d"; // Pulumi's secret sentinel in state

function program(aValue: string, bValue: number): string {
  return `
import { Noop } from "pulumi-proxmox-lxc";
const a = new Noop("a", { value: ${JSON.stringify(aValue)}, secretValue: "plain-input-made-secret" });
const b = new Noop("b", { value: { n: ${bValue} }, replaceOnChange: true });
export const aValue = a.value;
export const aRevision = a.revision;
export const aSecret = a.secretValue;
export const bId = b.id;
`;
}

function providerText(state: StackExport, name: string): string {
  const res = findResource(state, name);
  expect(res, `resource ${name} in state`).to.not.equal(undefined);
  const p = res!.inputs?.["__provider"];
  expect(p, "__provider input").to.be.a("string");
  return p as string;
}

describe("e2e: Noop through the real Pulumi engine", function () {
  this.timeout(SLOW);

  before(async function () {
    // The first run on a machine builds the CLI (minutes).
    this.timeout(45 * 60 * 1000);
    const PATH = await pulumiPath();
    const version = await pulumiVersion();
    const which = execFileSync("bash", ["-c", "command -v pulumi"], { env: { ...process.env, PATH } })
      .toString()
      .trim();
    console.log(`      pulumi version: ${version} (${which})`);
    const cacheBuilt = which.includes(`/${EXPECTED_PULUMI_VERSION}/bin/`);
    if (cacheBuilt) {
      expect(version).to.equal(EXPECTED_PULUMI_VERSION);
    } else {
      // A pulumi the user installed: ensure-pulumi accepted it as >= 3.139.
      expect(version).to.match(/^v3\.\d+\.\d+/);
    }
  });

  describe("lifecycle", function () {
    let stack: PulumiStack;

    before(async function () {
      stack = await PulumiStack.create({ programSource: program("one", 1) });
    });
    after(async function () {
      if (stack) await stack.remove();
    });

    it("up creates both resources and exports their outputs", async function () {
      const up = await stack.up();
      expect(opFor(up, "a"), describeChanges(up)).to.equal("create");
      expect(opFor(up, "b"), describeChanges(up)).to.equal("create");
      const out = await stack.outputs({ showSecrets: true });
      expect(out).to.include({ aValue: "one", aRevision: 1, aSecret: "plain-input-made-secret" });
      expect(out.bId).to.match(/^[0-9a-f-]{36}$/);
    });

    it("keeps only a small loader in state, not the handler code", async function () {
      const state = await stack.exportState();
      const text = providerText(state, "a");
      expect(text.length).to.be.lessThan(4096);
      expect(text).to.contain("pulumi-proxmox-lxc/provider");
      expect(text).to.contain('"Noop"');
      expect(text).to.contain("dispatch");
      expect(text, "handler code must not be serialized").to.not.contain("randomUUID");
      expect(providerText(state, "b")).to.equal(text);
      console.log(`      serialized provider: ${text.length} bytes`);
    });

    it("stores secretOutputs encrypted (additionalSecretOutputs)", async function () {
      const state = await stack.exportState();
      const a = findResource(state, "a")!;
      const secret = a.outputs?.["secretValue"] as Record<string, unknown>;
      expect(secret, "secretValue output").to.be.an("object");
      expect(secret).to.have.property(SECRET_MARKER_KEY);
      expect(secret).to.have.property("ciphertext");
      expect(JSON.stringify(a.outputs)).to.not.contain("plain-input-made-secret");
      const out = await stack.outputs();
      expect(out.aSecret).to.equal("[secret]");
    });

    it("preview right after up reports no changes", async function () {
      const preview = await stack.preview();
      expect(hasNoChanges(preview), describeChanges(preview)).to.equal(true);
      // Stack + a + b (providers are not counted), all unchanged.
      expect(preview.changeSummary).to.deep.equal({ same: 3 });
    });

    it("an input change is previewed and applied as an update", async function () {
      stack.writeProgram(program("two", 1));
      const preview = await stack.preview();
      expect(opFor(preview, "a"), describeChanges(preview)).to.equal("update");
      expect(changedResources(preview), describeChanges(preview)).to.deep.equal(["a"]);
      const up = await stack.up();
      expect(opFor(up, "a"), describeChanges(up)).to.equal("update");
      const out = await stack.outputs();
      expect(out).to.include({ aValue: "two", aRevision: 2 });
    });

    it("replaceOnChange turns a value change into a replace", async function () {
      const before = (await stack.outputs()).bId;
      stack.writeProgram(program("two", 2));
      const preview = await stack.preview();
      expect(opFor(preview, "b"), describeChanges(preview)).to.equal("replace");
      expect(changedResources(preview), describeChanges(preview)).to.deep.equal(["b"]);
      await stack.up();
      const after = (await stack.outputs()).bId;
      expect(after).to.be.a("string").and.not.equal(before);
    });

    it("refresh reads every resource and finds nothing to change", async function () {
      const refresh = await stack.refresh();
      const steps = resourceSteps(refresh);
      expect(steps.map((s) => s.op).sort(), describeChanges(refresh)).to.deep.equal(["refresh", "refresh"]);
      expect(Object.keys(refresh.changeSummary ?? {}), describeChanges(refresh)).to.deep.equal(["same"]);
      const preview = await stack.preview();
      expect(hasNoChanges(preview), describeChanges(preview)).to.equal(true);
    });

    it("destroy deletes everything", async function () {
      const destroy = await stack.destroy();
      expect(opFor(destroy, "a"), describeChanges(destroy)).to.equal("delete");
      expect(opFor(destroy, "b"), describeChanges(destroy)).to.equal("delete");
      const state = await stack.exportState();
      expect(state.deployment.resources ?? []).to.have.length(0);
    });
  });

  describe("Node.js language host (tools/pulumi-cli/cmd/pulumi-language-nodejs)", function () {
    let stack: PulumiStack;

    before(async function () {
      stack = await PulumiStack.create({
        programSource: `
import * as pulumi from "@pulumi/pulumi";
const c = new pulumi.Config("proxmox");
export const endpoint = c.require("endpoint");
export const password = c.requireSecret("password");
export const where = \`\${pulumi.getProject()}/\${pulumi.getStack()}\`;
`,
        stackName: "langhost",
        config: {
          "proxmox:endpoint": "https://pve.example.test:8006",
          "proxmox:password": { value: "program-secret", secret: true },
        },
      });
    });
    after(async function () {
      if (stack) await stack.remove();
    });

    it("passes stack config, secrets and project/stack names to the program", async function () {
      await stack.up();
      const out = await stack.outputs();
      expect(out).to.deep.equal({
        endpoint: "https://pve.example.test:8006",
        password: "[secret]",
        where: `${stack.projectName}/langhost`,
      });
      expect((await stack.outputs({ showSecrets: true })).password).to.equal("program-secret");
    });

    it("reports a program error as a failed update with the program's message", async function () {
      stack.writeProgram(`throw new Error("boom from the program 4711");\n`);
      const result = await stack.run(["up", "--yes", "--skip-preview"], { allowFailure: true });
      expect(result.code).to.not.equal(0);
      expect(result.stdout + result.stderr).to.contain("boom from the program 4711");
    });
  });

  describe("loader: the installed handler code runs, not a copy in state", function () {
    let stack: PulumiStack;
    let marker: string;

    before(async function () {
      stack = await PulumiStack.create({
        programSource: `
import { Noop } from "pulumi-proxmox-lxc";
const h = new Noop("h", { value: 1 });
export const revision = h.revision;
`,
        // A private copy of the package, so the test can edit its handler.
        packageLink: "copy",
        config: {
          "proxmox:endpoint": "https://pve.example.test:8006",
          "proxmox:password": { value: "config-secret-password", secret: true },
        },
      });
      marker = path.join(stack.dir, "delete-marker");
      // The provider host inherits the CLI's environment.
      stack.setEnv("NOOP_TEST_DELETE_MARKER", marker);
    });
    after(async function () {
      if (stack) await stack.remove();
    });

    it("after editing the handler, the next up and destroy run the new code", async function () {
      await stack.up();
      const before = providerText(await stack.exportState(), "h");

      // Replace the installed handler module of the copied package with new code.
      const handlerFile = path.join(stack.projectDir, "node_modules", "pulumi-proxmox-lxc", "dist", "provider", "resources", "noop.js");
      expect(fs.existsSync(handlerFile), handlerFile).to.equal(true);
      fs.writeFileSync(
        handlerFile,
        `"use strict";
const fs = require("node:fs");
const { getProviderConfig } = require("./registry");
exports.default = {
  async diff(id, olds, news) { return { changes: olds.value !== news.value }; },
  async create(inputs) { return { id: "edited", outs: { value: inputs.value, revision: 1 } }; },
  async update(id, olds, news) {
    const cfg = getProviderConfig();
    return { outs: { value: news.value, revision: 1000, edited: true,
      configuredKeys: Object.keys(cfg).sort(), endpoint: cfg.endpoint } };
  },
  async delete(id, props) { fs.writeFileSync(process.env.NOOP_TEST_DELETE_MARKER, "deleted by edited handler"); },
};
`,
      );

      stack.writeProgram(`
import { Noop } from "pulumi-proxmox-lxc";
const h = new Noop("h", { value: 2 });
export const revision = h.revision;
`);
      const up = await stack.up();
      expect(opFor(up, "h"), describeChanges(up)).to.equal("update");
      const state = await stack.exportState();
      const h = findResource(state, "h")!;
      expect(h.outputs).to.include({ revision: 1000, edited: true, endpoint: "https://pve.example.test:8006" });
      // configure() got the stack config (secrets decrypted, but never echoed into state here).
      expect(h.outputs?.["configuredKeys"]).to.deep.equal(["endpoint", "password"]);
      expect(JSON.stringify(state)).to.not.contain("config-secret-password");
      expect(providerText(state, "h"), "__provider must not change when handler code changes").to.equal(before);

      await stack.destroy();
      expect(fs.readFileSync(marker, "utf8")).to.equal("deleted by edited handler");
    });
  });
});
