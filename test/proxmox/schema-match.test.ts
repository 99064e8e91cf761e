/**
 * ApiSchema.matchPath: the indexed lookup (by segment count, first and last segment) must
 * answer exactly what the definition says — of all templates that match the concrete path,
 * the one with the fewest placeholders (literal segments win), `{volume}` taking the rest
 * of the path — for every path of both official schemas.
 */
import { expect } from "chai";
import { loadSchema, PVE_VERSIONS } from "../../provider/proxmox/schema";

interface Node {
  path: string;
  children?: Node[];
}

function allTemplates(version: (typeof PVE_VERSIONS)[number]): string[] {
  // Every template the schema knows is found by its own literal path.
  const s = loadSchema(version);
  const out: string[] = [];
  const roots = require(`../../provider/proxmox/schema/pve-${version}.json`) as Node[];
  const walk = (ns: Node[]) => ns.forEach((n) => (out.push(n.path), n.children && walk(n.children)));
  walk(roots);
  expect(out.every((t) => s.hasTemplate(t))).to.equal(true);
  return out;
}

/** The definition, by brute force over all templates. */
function reference(templates: string[], concrete: string): string | undefined {
  const segs = concrete.split("/").filter(Boolean);
  const matches = templates.filter((t) => {
    const ts = t.split("/").filter(Boolean);
    for (let i = 0; i < ts.length; i++) {
      if (ts[i] === "{volume}" && i === ts.length - 1 && segs.length > i) return true;
      if (ts[i].startsWith("{")) {
        if (segs[i] === undefined) return false;
      } else if (ts[i] !== segs[i]) return false;
    }
    return ts.length === segs.length;
  });
  const holes = (t: string) => (t.match(/\{/g) ?? []).length;
  return matches.sort((a, b) => holes(a) - holes(b) || templates.indexOf(a) - templates.indexOf(b))[0];
}

describe("ApiSchema.matchPath", function () {
  for (const version of PVE_VERSIONS) {
    it(`finds the same template as the definition for every path of PVE ${version}`, function () {
      const templates = allTemplates(version);
      const s = loadSchema(version);
      const concrete = new Set<string>(["/", "/nodes", "/nope/a/b", "/nodes/pve1/storage/local/content/local:vztmpl/sub/dir/a.tar.gz"]);
      for (const t of templates) {
        for (const fill of ["x1", "lxc", "status", "a/b"]) concrete.add(t.replace(/\{[^}]+\}/g, fill));
        concrete.add(`${t}/extra`);
      }
      for (const c of concrete) expect(s.matchPath(c)?.template, c).to.equal(reference(templates, c));
      expect(s.matchPath("/nodes/pve1/lxc/100/status/current")).to.deep.equal({
        template: "/nodes/{node}/lxc/{vmid}/status/current",
        pathParams: { node: "pve1", vmid: "100" },
      });
      expect(s.matchPath("/nodes/pve1/storage/local/content/local:vztmpl/a/b.tar.gz")?.pathParams.volume).to.equal("local:vztmpl/a/b.tar.gz");
    });
  }
});
