/**
 * Docs must match the code: every lookup function exported from sdk/lookups, every argument
 * of its `Get…Args` interface and every option of the Output form is named (in backticks)
 * in docs/lookups.md.
 */
import { expect } from "chai";
import * as fs from "node:fs";
import * as path from "node:path";
import * as ts from "typescript";

const ROOT = path.resolve(__dirname, "..", "..");
const DIR = path.join(ROOT, "sdk", "lookups");

function declarations(): { functions: string[]; members: Map<string, string[]> } {
  const functions: string[] = [];
  const members = new Map<string, string[]>();
  for (const f of fs.readdirSync(DIR).filter((n) => n.endsWith(".ts"))) {
    const file = path.join(DIR, f);
    const src = ts.createSourceFile(file, fs.readFileSync(file, "utf8"), ts.ScriptTarget.ES2022, true);
    src.forEachChild((n) => {
      const exported = ts.canHaveModifiers(n) && ts.getModifiers(n)?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword);
      if (exported && ts.isFunctionDeclaration(n) && n.name && /^get[A-Z]/.test(n.name.text)) functions.push(n.name.text);
      if (exported && ts.isInterfaceDeclaration(n) && /^(Get\w+Args|LookupOutputOptions)$/.test(n.name.text)) {
        members.set(n.name.text, n.members.map((m) => m.name?.getText()).filter((x): x is string => !!x));
      }
    });
  }
  return { functions, members };
}

describe("lookup documentation", () => {
  const text = fs.readFileSync(path.join(ROOT, "docs", "lookups.md"), "utf8");
  const { functions, members } = declarations();

  it("finds the lookups", () => {
    expect(functions).to.include.members(["getVolumes", "getVolumesOutput", "getNodes", "getContainer", "getNextVmid", "getAppliances"]);
    expect([...members.keys()]).to.include.members(["GetVolumesArgs", "LookupOutputOptions"]);
  });

  it("docs/lookups.md names every lookup function", () => {
    expect(functions.filter((f) => !text.includes("`" + f + "(") && !text.includes("`" + f + "`"))).to.deep.equal([]);
  });

  for (const [name, fields] of members) {
    it(`docs/lookups.md documents every ${name} field`, () => {
      expect(fields.filter((f) => !text.includes("`" + f + "`"))).to.deep.equal([]);
    });
  }
});
