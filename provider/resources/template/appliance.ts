/**
 * Finding an appliance in the node's index (GET /nodes/{node}/aplinfo, BEHAVIOR.md 6.4).
 * Users write either the template file name (`debian-12-standard_12.7-1_amd64.tar.zst`)
 * or the package name (`debian-12-standard`); a name that matches nothing fails with the
 * closest entries, because index names are long and easy to mistype.
 */
import type { AplInfo } from "../../proxmox/storage";

/** Edit distance (insert/delete/substitute), for "did you mean". */
export function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0];
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j];
      prev[j] = Math.min(prev[j] + 1, prev[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length];
}

/** Compare versions like "12.7-1" numerically part by part. */
function compareVersions(a = "", b = ""): number {
  const pa = a.split(/[.-]/);
  const pb = b.split(/[.-]/);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? "";
    const y = pb[i] ?? "";
    const nx = Number(x);
    const ny = Number(y);
    const c = !Number.isNaN(nx) && !Number.isNaN(ny) && x !== "" && y !== "" ? nx - ny : x.localeCompare(y);
    if (c) return c;
  }
  return 0;
}

/** Up to `n` index entries whose template or package name is closest to `name`. */
export function closeMatches(index: AplInfo[], name: string, n = 5): string[] {
  const q = name.toLowerCase();
  const scored = index
    .filter((a) => a.type === undefined || a.type === "lxc")
    .map((a) => {
      const t = a.template.toLowerCase();
      const p = (a.package ?? "").toLowerCase();
      let score = Math.min(editDistance(q, t), p ? editDistance(q, p) : Infinity);
      // A fragment like "debian-12" is a good hint even though its edit distance is large.
      if (t.includes(q) || (p && p.includes(q)) || (p && q.includes(p))) score = Math.min(score, 1);
      return { template: a.template, score };
    })
    .sort((x, y) => x.score - y.score || x.template.localeCompare(y.template));
  return scored.slice(0, n).map((s) => s.template);
}

/**
 * The index entry for `name` (exact template file name, else the newest version of the
 * package of that name), or an Error naming the closest entries.
 */
export function resolveAppliance(index: AplInfo[], name: string, node: string): AplInfo | Error {
  const lxc = index.filter((a) => a.type === undefined || a.type === "lxc");
  const exact = lxc.find((a) => a.template === name);
  if (exact) return exact;
  const byPackage = lxc.filter((a) => a.package === name).sort((a, b) => compareVersions(b.version, a.version));
  if (byPackage.length) return byPackage[0];
  if (!lxc.length) {
    return new Error(
      `appliance: the appliance index of node '${node}' is empty. Run \`pveam update\` on the node (or use url/path instead).`,
    );
  }
  const close = closeMatches(lxc, name);
  return new Error(
    `appliance: '${name}' is not in the appliance index of node '${node}'. Closest entries:\n` +
      close.map((c) => `    ${c}`).join("\n") +
      `\n  Give a template file name or package name from \`pveam available --section system\`.`,
  );
}
