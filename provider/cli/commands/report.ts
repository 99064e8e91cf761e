/**
 * `pve-lxc report`: turn `pulumi preview --json` into a Markdown summary for a pull-request
 * comment — per resource what happens in Proxmox words (created, changed in place live or
 * with a reboot, migrated, volume moved, disk grown, replaced, deleted) with the properties
 * involved — and fail when a change of a kind that `--deny` names would happen.
 *
 * A Container update is classified by the planner `pulumi up` runs
 * (resources/container/plan.ts), applied to the old outputs and new inputs the preview
 * recorded — the same pair the provider's diff and update receive — so the report and `up`
 * cannot disagree. Secrets arrive from Pulumi as "[secret]" and stay that way.
 */
import * as fs from "node:fs";
import { parseArgs } from "node:util";
import type { CliCommand } from "../main";
import { containerArgsSchema, type ContainerArgs } from "../../resources/container/args";
import { planChanges, canonical, CREATE_ONLY_FIELDS, PROVIDER_ONLY_FIELDS, REPLACE_FIELDS, type ChangePlan } from "../../resources/container/plan";
import { toPveKeys } from "../../resources/container/pveConfig";
import { LIVE_KEYS } from "../../resources/container/safety";
import { UNKNOWN } from "../../resources/validation";

/** Kinds of change a policy can deny. */
export const EFFECTS = ["create", "update", "reboot", "migrate", "move", "grow", "replace", "delete"] as const;
export type Effect = (typeof EFFECTS)[number];

/** What `pulumi preview --json` prints (the parts used here). */
export interface PreviewJson {
  steps?: PreviewStep[];
  diagnostics?: Array<{ urn?: string; message?: string; severity?: string }>;
  changeSummary?: Record<string, number>;
}
export interface PreviewStep {
  op: string;
  urn: string;
  oldState?: { type?: string; id?: string; inputs?: Record<string, unknown>; outputs?: Record<string, unknown> };
  newState?: { type?: string; inputs?: Record<string, unknown> };
  diffReasons?: string[];
  replaceReasons?: string[];
}

export interface ResourceReport {
  name: string;
  /** Resource kind ("Container", "Template", ...) or the Pulumi type token of other resources. */
  kind: string;
  /** Where it is, e.g. "CT 101 on pve1". */
  where?: string;
  effects: Set<Effect>;
  /** One line for the summary table. */
  headline: string;
  /** Markdown bullet lines (without the "- "). */
  details: string[];
  /** Set when the change cannot be applied (the planner refuses it, e.g. a shrinking disk). */
  refused?: string;
}

const SECRET = "[secret]";
const PROXMOX_TYPE = /^pulumi-nodejs:dynamic\/proxmox:(\w+)$/;
/** The Container's input names: its outputs minus what only Proxmox knows are its previous inputs. */
const CONTAINER_INPUTS = Object.keys(containerArgsSchema.innerType().shape);
/** Steps of one replacement; the "replace" step carries old and new state. */
const REPLACE_OPS = new Set(["replace", "create-replacement", "delete-replaced"]);
const CHANGE_OPS = new Set(["create", "update", "delete", ...REPLACE_OPS]);

// ---------------------------------------------------------------- values and properties

/** A value as the report shows it: secrets as [secret], unknowns as such, scalars bare. */
function show(v: unknown): string {
  if (v === undefined || v === null) return "(unset)";
  if (v === SECRET) return SECRET;
  if (v === UNKNOWN) return "(known after up)";
  const s = typeof v === "string" ? v : JSON.stringify(v);
  return "`" + s.replace(/`/g, "'") + "`";
}

const same = (a: unknown, b: unknown) => JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === "object" && !Array.isArray(v);

/** The leaf-level differences between two values, as ["path", old, new]. */
export function leafChanges(path: string, a: unknown, b: unknown): Array<[string, unknown, unknown]> {
  if (same(a, b)) return [];
  if (isObject(a) && isObject(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    return keys.flatMap((k) => leafChanges(`${path}.${k}`, a[k], b[k]));
  }
  if (Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.some((x) => isObject(x))) {
    return a.flatMap((x, i) => leafChanges(`${path}[${i}]`, x, b[i]));
  }
  return [[path, a, b]];
}

/** "path: old → new" lines for the top-level properties `keys` (secret changes included). */
function propertyLines(keys: string[], olds: Record<string, unknown>, news: Record<string, unknown>): string[] {
  return keys.flatMap((k) => {
    const leaves = leafChanges(k, olds[k], news[k]);
    // Two [secret]s compare equal here, but the engine saw the real values differ.
    if (!leaves.length) return [`\`${k}\`: ${SECRET} → ${SECRET}`];
    return leaves.map(([p, a, b]) => `\`${p}\`: ${show(a)} → ${show(b)}`);
  });
}

/** Inputs without the dynamic provider's serialized code. */
function withoutProvider(obj: Record<string, unknown> | undefined): Record<string, unknown> {
  const { __provider: _code, ...rest } = obj ?? {};
  return rest;
}

const pick = (obj: Record<string, unknown>, keys: string[]) => Object.fromEntries(keys.filter((k) => k in obj).map((k) => [k, obj[k]]));

const contains = (marker: string) => {
  const has = (v: unknown): boolean => v === marker || (Array.isArray(v) ? v.some(has) : isObject(v) ? Object.values(v).some(has) : false);
  return has;
};
const hasUnknown = contains(UNKNOWN);
const hasSecret = contains(SECRET);

// ---------------------------------------------------------------- containers

interface ContainerUpdate {
  effects: Set<Effect>;
  details: string[];
  words: string[];
}

/**
 * What an in-place update of a container does, from the planner's plan. `running` is the
 * state before the update (from the old outputs); `changed` the inputs to describe.
 */
function describeContainerUpdate(prev: ContainerArgs, next: ContainerArgs, plan: ChangePlan, changed: string[], running: boolean): ContainerUpdate {
  const u: ContainerUpdate = { effects: new Set<Effect>(["update"]), details: [], words: [] };
  describeNodeAndDisks(u, prev, plan, running);
  describeConfig(u, prev, next, plan, changed, running && next.started !== false);
  if (plan.power) u.details.push(`the container is **${plan.power === "start" ? "started" : "stopped"}**`);
  if (!u.words.length && plan.power) u.words.push(plan.power === "start" ? "started" : "stopped");
  // "changed in place, needs a reboot" already says "changed in place".
  const finer = u.words.some((w) => w.startsWith("changed in place,"));
  u.words = [...new Set(u.words)].filter((w) => !(finer && w === "changed in place"));
  return u;
}

/** Migration, volume moves and growth: the steps `up` runs before touching the config. */
function describeNodeAndDisks(u: ContainerUpdate, prev: ContainerArgs, plan: ChangePlan, running: boolean): void {
  const disk = (name: string) => (name === "rootfs" ? prev.rootfs : prev.mountPoints?.find((x) => `mp${x.slot}` === name));
  if (plan.migrateTo) {
    u.effects.add("migrate");
    if (running) u.effects.add("reboot");
    u.words.push(`migrated to ${plan.migrateTo}`);
    u.details.push(`**migrated** from \`${prev.node}\` to \`${plan.migrateTo}\`` + (running ? " (restart mode: the running container is stopped and started on the target)" : ""));
  }
  for (const m of plan.diskMoves) {
    u.effects.add("move");
    if (running) u.effects.add("reboot"); // PVE moves volumes of stopped CTs only
    u.words.push("volume moved");
    u.details.push(`**volume moved**: \`${m.disk}\` from \`${disk(m.disk)?.storage}\` to \`${m.storage}\`` + (running ? " (the container is stopped for the move and started again)" : ""));
  }
  for (const r of plan.diskResizes) {
    u.effects.add("grow");
    u.words.push("disk grown");
    u.details.push(`**disk grown**: \`${r.disk}\` ${show(disk(r.disk)?.size)} → ${show(r.size)} (online, nothing is lost)`);
  }
}

/** Every other changed input, grouped by how Proxmox applies it (BEHAVIOR.md 1.4). */
function describeConfig(u: ContainerUpdate, prev: ContainerArgs, next: ContainerArgs, plan: ChangePlan, changed: string[], staysRunning: boolean): void {
  const olds = prev as Record<string, unknown>;
  const news = next as Record<string, unknown>;
  const covered = new Set([...plan.diskMoves.map((m) => m.disk), ...plan.diskResizes.map((r) => r.disk)]);
  const groups = { live: [] as string[], restart: [] as string[], createOnly: [] as string[], providerOnly: [] as string[] };
  for (const k of changed) {
    if (k === "node") continue;
    if ((CREATE_ONLY_FIELDS as readonly string[]).includes(k)) groups.createOnly.push(...propertyLines([k], olds, news));
    else if ((PROVIDER_ONLY_FIELDS as readonly string[]).includes(k)) groups.providerOnly.push(...propertyLines([k], olds, news));
    else {
      const lines = diskAwareLines(k, olds, news, covered);
      if (lines.length) (needsRestart(k, prev, next, plan) ? groups.restart : groups.live).push(...lines);
    }
  }
  if (groups.live.length) {
    u.words.push("changed in place");
    u.details.push(`**changed in place, live**: ${groups.live.join("; ")}`);
  }
  if (groups.restart.length) {
    if (!staysRunning) {
      u.words.push("changed in place");
      u.details.push(`**changed in place** (the container is stopped, so this applies at its next start): ${groups.restart.join("; ")}`);
    } else if (next.pendingChanges === "leave") {
      u.words.push("changed in place, pending until a restart");
      u.details.push(`**changed in place, needs a reboot** — left pending until the next restart (\`pendingChanges: leave\`): ${groups.restart.join("; ")}`);
    } else {
      u.effects.add("reboot");
      u.words.push("changed in place, needs a reboot");
      u.details.push(`**changed in place, needs a reboot** — \`up\` reboots the container (\`pendingChanges: reboot\`): ${groups.restart.join("; ")}`);
    }
  }
  if (groups.createOnly.length) {
    if (!u.words.length) u.words.push("recorded only (create-only input)");
    u.details.push(`only applied when a container is created, so **not changed in Proxmox** (change it inside the container): ${groups.createOnly.join("; ")}`);
  }
  if (groups.providerOnly.length) {
    if (!u.words.length) u.words.push("provider settings only");
    u.details.push(`provider settings, nothing changes in Proxmox: ${groups.providerOnly.join("; ")}`);
  }
}

/** Property lines of input `k`, leaving out the size/storage leaves a move or grow line already shows. */
function diskAwareLines(k: string, olds: Record<string, unknown>, news: Record<string, unknown>, covered: Set<string>): string[] {
  const lines = leafChanges(k, olds[k], news[k]).filter(([p]) => {
    const m = /^(rootfs|mountPoints\[(\d+)\])\.(size|storage)$/.exec(p);
    if (!m) return true;
    const disk = m[1] === "rootfs" ? "rootfs" : `mp${(news.mountPoints as Array<{ slot: number }> | undefined)?.[Number(m[2])]?.slot}`;
    return !covered.has(disk);
  });
  return lines.map(([p, a, b]) => `\`${p}\`: ${show(a)} → ${show(b)}`);
}

/** True when a change of input `k` is not applied live on a running CT (BEHAVIOR.md 1.4). */
function needsRestart(k: string, prev: ContainerArgs, next: ContainerArgs, plan: ChangePlan): boolean {
  if (k === "pool" || k === "started") return false;
  if (k === "rootfs") return plan.diskRewrites.some((r) => r.disk === "rootfs");
  if (k === "mountPoints") {
    return plan.diskRewrites.some((r) => r.disk !== "rootfs") || [...Object.keys(plan.set), ...plan.delete].some((key) => /^mp\d+$/.test(key));
  }
  const before = toPveKeys({ [k]: (prev as Record<string, unknown>)[k] } as ContainerArgs);
  const after = toPveKeys({ [k]: (next as Record<string, unknown>)[k] } as ContainerArgs);
  const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].filter((p) => before[p] !== after[p]);
  return keys.some((p) => !LIVE_KEYS.test(p));
}

function containerReport(base: ResourceReport, op: string, step: PreviewStep): void {
  const outs = step.oldState?.outputs ?? {};
  const olds = pick(outs, CONTAINER_INPUTS);
  const news = withoutProvider(step.newState?.inputs);
  if (outs.vmid !== undefined) base.where = `CT ${outs.vmid} on ${outs.node}`;
  if (op === "create") {
    base.headline = "created";
    base.details.push(`**created** on \`${news.node}\`${news.template ? ` from ${show(news.template)}` : ""}`);
    return;
  }
  if (op === "delete") {
    base.headline = "deleted";
    base.details.push("**deleted**: the container and its volumes are destroyed");
    return;
  }
  if (news.vmid === undefined) delete olds.vmid; // an allocated vmid is state, not input
  const reasons = step.replaceReasons?.length ? step.replaceReasons : REPLACE_FIELDS.filter((f) => (f !== "vmid" || news.vmid !== undefined) && !same(olds[f], news[f]));
  if (op === "replace") {
    base.effects.add("replace");
    base.headline = "replaced (data on its volumes is lost)";
    base.details.push(`**replaced**: a new container is created and this one destroyed — **data on its volumes is lost**. Because of: ${propertyLines(reasons, olds, news).join("; ")}`);
    const rest = changedKeys(olds, news, step).filter((k) => !reasons.includes(k));
    if (rest.length) base.details.push(`also different in the new container: ${propertyLines(rest, olds, news).join("; ")}`);
    return;
  }
  // An in-place update: plan it exactly as `up` will.
  base.effects.add("update");
  if (hasUnknown(news)) {
    base.headline = "changed in place (some values are known only during up)";
    base.details.push(`**changed in place**; values marked "(known after up)" come from other resources, so whether this migrates, moves, grows or reboots is decided during \`up\`: ${propertyLines(changedKeys(olds, news, step), olds, news).join("; ")}`);
    return;
  }
  const prev = olds as unknown as ContainerArgs;
  const parsed = containerArgsSchema.safeParse(news);
  if (!parsed.success) {
    // check() accepted these inputs, so only a masked secret can fail here: report without a plan.
    base.headline = "changed in place";
    base.details.push(`**changed in place**: ${propertyLines(changedKeys(olds, news, step), olds, news).join("; ")}`);
    return;
  }
  const next = parsed.data;
  const plan = planChanges(prev, next, { volids: (outs.volids as Record<string, string>) ?? {}, hwaddrs: (outs.hwaddrs as Record<string, string>) ?? {} });
  // The engine found a change but the planner sees none: it is in a secret input, which the
  // preview shows only as "[secret]" (and names in no diff list) — so name the secret inputs.
  const changed = plan.changed.length ? plan.changed : Object.keys(news).filter((k) => hasSecret(news[k]) || hasSecret(olds[k])).sort();
  const update = describeContainerUpdate(prev, next, plan, changed, outs.status === "running");
  for (const e of update.effects) base.effects.add(e);
  base.headline = update.words.join(", ") || "changed in place";
  base.details.push(...update.details);
}

// ---------------------------------------------------------------- any resource

/** Changed top-level inputs: the engine's diffReasons, else a comparison. */
function changedKeys(olds: Record<string, unknown>, news: Record<string, unknown>, step: PreviewStep): string[] {
  const fromEngine = (step.diffReasons ?? []).filter((k) => k !== "__provider");
  if (fromEngine.length) return [...new Set(fromEngine)].sort();
  return [...new Set([...Object.keys(olds), ...Object.keys(news)])].filter((k) => !same(olds[k], news[k])).sort();
}

function genericReport(base: ResourceReport, op: string, step: PreviewStep): void {
  const olds = withoutProvider(step.oldState?.inputs ?? step.oldState?.outputs);
  const news = withoutProvider(step.newState?.inputs);
  if (op === "create") {
    base.headline = "created";
    base.details.push("**created**");
  } else if (op === "delete") {
    base.headline = "deleted";
    base.details.push("**deleted**");
  } else if (op === "replace") {
    base.effects.add("replace");
    base.headline = "replaced";
    const reasons = step.replaceReasons ?? [];
    base.details.push(`**replaced** (created anew, the old one deleted)${reasons.length ? `. Because of: ${propertyLines(reasons, olds, news).join("; ")}` : ""}`);
  } else {
    base.effects.add("update");
    base.headline = "changed in place";
    const keys = changedKeys(olds, news, step);
    base.details.push(`**changed in place**${keys.length ? `: ${propertyLines(keys, olds, news).join("; ")}` : ""}`);
  }
}

/** The name part of a URN. */
const urnName = (urn: string) => urn.slice(urn.lastIndexOf("::") + 2);
const urnType = (urn: string) => urn.split("::")[2]?.split("$").pop() ?? "";

/** One report per changed resource, in the order of the preview. */
export function analyze(preview: PreviewJson): ResourceReport[] {
  const byUrn = new Map<string, PreviewStep[]>();
  for (const s of preview.steps ?? []) {
    if (!CHANGE_OPS.has(s.op)) continue;
    const type = urnType(s.urn);
    if (type === "pulumi:pulumi:Stack" || type.startsWith("pulumi:providers:")) continue;
    byUrn.set(s.urn, [...(byUrn.get(s.urn) ?? []), s]);
  }
  return [...byUrn.entries()].map(([urn, steps]) => {
    const replacing = steps.find((s) => s.op === "replace") ?? steps.find((s) => REPLACE_OPS.has(s.op));
    const step = replacing ?? steps[0];
    const op = replacing ? "replace" : step.op;
    const type = step.newState?.type ?? step.oldState?.type ?? urnType(urn);
    const kind = PROXMOX_TYPE.exec(type)?.[1] ?? type;
    const base: ResourceReport = { name: urnName(urn), kind, effects: new Set(), headline: "", details: [] };
    if (op === "create" || op === "delete") base.effects.add(op);
    try {
      if (kind === "Container") containerReport(base, op, step);
      else genericReport(base, op, step);
    } catch (err) {
      // The planner refuses what `up` would refuse (a shrinking disk): say so, do not crash.
      base.refused = (err as Error).message;
      base.headline = "refused: `up` would fail";
      base.details = [`**refused**: ${base.refused}`];
    }
    return base;
  });
}

// ---------------------------------------------------------------- Markdown and policy

const HEADLINE_EFFECT: Record<Effect, string> = {
  create: "would be created",
  update: "would be changed",
  reboot: "would be restarted",
  migrate: "would be migrated to another node",
  move: "would have a volume moved",
  grow: "would have a disk grown",
  replace: "would be replaced",
  delete: "would be deleted",
};

/** Resources whose change includes a denied effect, with what they would do. */
export function violations(reports: ResourceReport[], deny: Effect[]): string[] {
  return reports.flatMap((r) => deny.filter((e) => r.effects.has(e)).map((e) => `\`${r.name}\` (${r.kind}) ${HEADLINE_EFFECT[e]} (--deny ${e})`));
}

export function renderMarkdown(reports: ResourceReport[], preview: PreviewJson, opts: { title: string; deny: Effect[] }): string {
  const out = [`## ${opts.title}`, ""];
  const errors = (preview.diagnostics ?? []).filter((d) => d.severity === "error");
  if (!reports.length) out.push("No changes: Proxmox stays as it is.", "");
  else {
    const counts = new Map<string, number>();
    for (const r of reports) {
      const key = r.effects.has("replace") ? "replaced" : r.effects.has("create") ? "created" : r.effects.has("delete") ? "deleted" : "changed";
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    out.push(`${reports.length} resource${reports.length === 1 ? "" : "s"} change: ${[...counts].map(([k, n]) => `${n} ${k}`).join(", ")}.`, "");
    out.push("| resource | kind | what happens in Proxmox |", "|---|---|---|");
    for (const r of reports) out.push(`| \`${r.name}\` | ${r.kind}${r.where ? ` (${r.where})` : ""} | ${r.headline} |`);
    out.push("");
    for (const r of reports) {
      out.push(`### \`${r.name}\` (${r.kind}${r.where ? `, ${r.where}` : ""})`, "");
      for (const d of r.details) out.push(`- ${d}`);
      out.push("");
    }
  }
  const denied = violations(reports, opts.deny);
  if (denied.length) {
    out.push(`### Blocked by policy (\`--deny ${opts.deny.join(",")}\`)`, "");
    for (const v of denied) out.push(`- ${v}`);
    out.push("");
  }
  if (errors.length) {
    out.push("### The preview failed", "", "The changes above may be incomplete: the preview stopped at this error.", "");
    // Program errors carry the terminal colours of Node's stack traces.
    for (const e of errors) out.push("```", (e.message ?? "").replace(/\x1b\[[0-9;]*m/g, "").trim(), "```");
    out.push("");
  }
  return out.join("\n");
}

// ---------------------------------------------------------------- command

const HELP = `Usage: pve-lxc report [PREVIEW.json | -] [--deny KINDS] [--output FILE] [--title TEXT]

Reads the output of \`pulumi preview --json\` (a file, or stdin when none or "-") and writes a
Markdown summary for a pull-request comment: per resource what happens in Proxmox (created,
changed in place live or with a reboot, migrated, volume moved, disk grown, replaced — data on
its volumes is lost —, deleted) with the properties involved. Secrets show as [secret].

  --deny KINDS    comma-separated kinds of change to refuse: ${EFFECTS.join(", ")}.
                  Any resource that would do one makes the exit code 1 and is named.
  --output FILE   also write the Markdown to FILE
  --title TEXT    heading of the summary (default "Proxmox changes")

Exit codes: 0 allowed; 1 a denied change, a change \`up\` would refuse, or the preview reported
an error; 2 bad usage or input. See docs/ci.md.`;

function parseDeny(list: string | undefined): Effect[] {
  if (!list) return [];
  const kinds = list.split(",").map((s) => s.trim()).filter(Boolean);
  const bad = kinds.filter((k) => !(EFFECTS as readonly string[]).includes(k));
  if (bad.length) throw new UsageError(`--deny: unknown kind${bad.length > 1 ? "s" : ""} ${bad.map((b) => `'${b}'`).join(", ")}; use any of ${EFFECTS.join(", ")}`);
  return kinds as Effect[];
}

class UsageError extends Error {}

function readPreview(file: string | undefined): PreviewJson {
  const source = !file || file === "-" ? "stdin" : file;
  const text = source === "stdin" ? fs.readFileSync(0, "utf8") : fs.readFileSync(source, "utf8");
  try {
    const json = JSON.parse(text) as PreviewJson;
    if (!json || typeof json !== "object" || (json.steps !== undefined && !Array.isArray(json.steps))) throw new Error("no steps array");
    return json;
  } catch (err) {
    throw new UsageError(`${source} is not the output of \`pulumi preview --json\` (${(err as Error).message}); run \`pulumi preview --json > preview.json\``);
  }
}

const command: CliCommand = {
  summary: "Markdown summary of `pulumi preview --json` for pull requests, with --deny policy",
  async run(argv) {
    let values: { deny?: string; output?: string; title?: string; help?: boolean };
    let positionals: string[];
    try {
      ({ values, positionals } = parseArgs({
        args: argv,
        allowPositionals: true,
        options: { deny: { type: "string" }, output: { type: "string" }, title: { type: "string" }, help: { type: "boolean", short: "h" } },
      }));
      if (values.help) {
        console.log(HELP);
        return 0;
      }
      if (positionals.length > 1) throw new UsageError("give one preview file (or none for stdin)");
      const deny = parseDeny(values.deny);
      const preview = readPreview(positionals[0]);
      const reports = analyze(preview);
      const md = renderMarkdown(reports, preview, { title: values.title ?? "Proxmox changes", deny });
      process.stdout.write(md);
      if (values.output) fs.writeFileSync(values.output, md);
      const denied = violations(reports, deny);
      for (const v of denied) console.error(`pve-lxc report: denied: ${v.replace(/`/g, "")}`);
      const failed = (preview.diagnostics ?? []).some((d) => d.severity === "error") || reports.some((r) => r.refused);
      if (failed) console.error("pve-lxc report: the preview reported errors, or a change would be refused (see the report)");
      return denied.length || failed ? 1 : 0;
    } catch (err) {
      const code = String((err as NodeJS.ErrnoException).code ?? "");
      if (err instanceof UsageError || code === "ENOENT" || code.startsWith("ERR_PARSE_ARGS")) {
        console.error(`pve-lxc report: ${(err as Error).message}\n\n${HELP}`);
        return 2;
      }
      throw err;
    }
  },
};

export default command;
