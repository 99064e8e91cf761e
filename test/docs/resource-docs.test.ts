/**
 * Docs must match the code: every input of every resource's Args interface in sdk/ is
 * documented on the resource's page (docs/<resource>.md), in a table row or heading that
 * names it in backticks.
 */
import { expect } from "chai";
import * as fs from "node:fs";
import * as path from "node:path";
import * as ts from "typescript";

const ROOT = path.resolve(__dirname, "..", "..");
const kebab = (s: string) => s.replace(/([a-z0-9])([A-Z])/g, "$1-$2").toLowerCase();

/** Resource classes in sdk/ and the members of their `<Name>Args` interfaces. */
function resources(): Array<{ name: string; file: string; inputs: string[] }> {
  const out: Array<{ name: string; file: string; inputs: string[] }> = [];
  for (const f of fs.readdirSync(path.join(ROOT, "sdk")).filter((n) => n.endsWith(".ts"))) {
    const file = path.join(ROOT, "sdk", f);
    const src = ts.createSourceFile(file, fs.readFileSync(file, "utf8"), ts.ScriptTarget.ES2022, true);
    const classes: string[] = [];
    const interfaces = new Map<string, string[]>();
    src.forEachChild((n) => {
      if (ts.isClassDeclaration(n) && n.name && n.heritageClauses?.some((h) => h.types.some((t) => t.expression.getText() === "ProxmoxResource"))) classes.push(n.name.text);
      if (ts.isInterfaceDeclaration(n)) interfaces.set(n.name.text, n.members.map((m) => m.name?.getText()).filter((x): x is string => !!x));
    });
    for (const c of classes) out.push({ name: c, file: f, inputs: interfaces.get(`${c}Args`) ?? [] });
  }
  return out;
}

describe("resource documentation", () => {
  const list = resources();
  it("finds the resources", () => {
    expect(list.map((r) => r.name)).to.include.members(["Noop", "Container"]);
  });
  for (const r of list) {
    it(`docs/${kebab(r.name)}.md documents every ${r.name} input`, () => {
      const page = path.join(ROOT, "docs", `${kebab(r.name)}.md`);
      expect(fs.existsSync(page), `missing ${path.relative(ROOT, page)}`).to.equal(true);
      const text = fs.readFileSync(page, "utf8");
      const missing = r.inputs.filter((i) => !text.includes("`" + i + "`"));
      expect(missing, `${r.name} inputs missing from ${path.relative(ROOT, page)}`).to.deep.equal([]);
    });
  }
});
