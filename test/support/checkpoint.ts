/**
 * Read a stack's checkpoint straight from the file backend (test/support/pulumi.ts puts it
 * under <stack dir>/state): the state as the engine wrote it, without a `pulumi stack
 * export` round trip (seconds per call on a loaded machine).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { PulumiStack, ResourceState } from "./pulumi";

function find(dir: string, name: string): string | undefined {
  if (!fs.existsSync(dir)) return undefined;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      const hit = find(p, name);
      if (hit) return hit;
    } else if (e.name === name) {
      return p;
    }
  }
  return undefined;
}

/** Custom resources in the stack's latest checkpoint (no stack, no providers). */
export function checkpointResources(stack: PulumiStack): Array<ResourceState & { initErrors?: string[] }> {
  const file = find(path.join(stack.dir, "state", ".pulumi", "stacks"), `${stack.stackName}.json`);
  if (!file) throw new Error(`no checkpoint for stack ${stack.stackName} under ${stack.dir}/state`);
  const cp = JSON.parse(fs.readFileSync(file, "utf8")) as { checkpoint?: { latest?: { resources?: ResourceState[] } } };
  return (cp.checkpoint?.latest?.resources ?? []).filter((r) => !r.type.startsWith("pulumi:"));
}
