/**
 * `isTemplate: true`: convert the container into a CT template (POST …/template, BEHAVIOR.md
 * 4.10). PVE refuses a running CT, one with snapshots and one that is locked; it answers
 * `null` and converts in a background `vztemplate` task (LxcApi.templateAndWait finds it).
 * The conversion is one-way — `templateReplaces` (./origin) makes true → false a replacement.
 */
import type { PveClient } from "../../proxmox/client";
import type { OperationContext } from "../operation";

/** Convert the CT unless it is a template already; a running CT is stopped first with `stop`. */
export async function ensureTemplate(
  client: PveClient,
  node: string,
  vmid: number,
  timeoutMs: number,
  ctx: OperationContext,
  stop: () => Promise<void>,
): Promise<void> {
  const cfg = await client.lxc.getConfig(node, vmid, { current: true });
  if (cfg.template) return;
  if ((await client.lxc.status(node, vmid)).status === "running") await stop();
  ctx.log.info({ vmid }, "converting the container into a CT template");
  await client.lxc.templateAndWait(node, vmid, { logger: ctx.log, wait: { timeoutMs } });
}

/** The error for a CT that is a template although the program does not say so. */
export function undeclaredTemplateError(vmid: number, how: string): Error {
  return new Error(
    `CT ${vmid} is a CT template (${how}); set isTemplate: true on this Container — Proxmox cannot turn a template back into a container, and a template cannot be started`,
  );
}

/** check(): `started: true` on a template is ignored; say so once per preview/up. */
export function startedIgnoredWarning(news: Record<string, unknown>): string | undefined {
  if (news.isTemplate === true && news.started === true) {
    return "started: true is ignored because isTemplate is true — a CT template is never started (remove started, or clone the template and start the clone)";
  }
  return undefined;
}

/** diff(): say why the preview replaces a template (the engine only names the field). */
export function noteTemplateReplace(replaces: string[], resourceName: unknown): void {
  if (!replaces.includes("isTemplate")) return;
  process.stderr.write(
    `[proxmox] Container ${String(resourceName ?? "")}: isTemplate true → false replaces the container: Proxmox cannot turn a CT template back into a container (its linked clones are replaced with it)\n`,
  );
}
