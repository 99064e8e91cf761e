/**
 * Does the bridge a network device names exist on the node? PVE creates a CT with any
 * bridge name and only the start fails (`bridge 'vmbr9' does not exist`), leaving a CT
 * that cannot run. So the handler asks once per node and run — GET
 * /nodes/{node}/network?type=any_bridge (any user may; Linux and OVS bridges, and on current
 * releases the SDN VNets the user may use), plus /cluster/sdn/vnets for older ones — and
 * refuses an unknown bridge before creating. When the node cannot be asked, nothing is refused.
 */
import { z } from "zod";
import type { PveClient } from "../../proxmox/client";
import type { ConnectionSettings } from "../../proxmox/settings";
import type { Logger } from "../../logging";

const IfaceSchema = z.array(z.object({ iface: z.string(), type: z.string().optional() }).passthrough());
const VnetSchema = z.array(z.object({ vnet: z.string() }).passthrough());
const BRIDGE_TYPES = new Set(["bridge", "OVSBridge", "vnet"]);

/** Per connection (shared by every view of a client) and node: the bridge names, or undefined if unknown. */
const cache = new WeakMap<ConnectionSettings, Map<string, Promise<Set<string> | undefined>>>();

async function listBridges(client: PveClient, node: string, log: Logger): Promise<Set<string> | undefined> {
  try {
    const ifaces = await client.get(`/nodes/${encodeURIComponent(node)}/network`, { type: "any_bridge" }, { schema: IfaceSchema, logger: log });
    const names = new Set(ifaces.filter((i) => i.type === undefined || BRIDGE_TYPES.has(i.type)).map((i) => i.iface));
    try {
      for (const v of await client.get("/cluster/sdn/vnets", undefined, { schema: VnetSchema, logger: log })) names.add(v.vnet);
    } catch (e) {
      log.debug({ err: (e as Error).message }, "SDN VNets not readable; checking node bridges only");
    }
    return names;
  } catch (e) {
    log.debug({ node, err: (e as Error).message }, "node network not readable; bridges are not checked before create");
    return undefined;
  }
}

export function nodeBridges(client: PveClient, node: string, log: Logger): Promise<Set<string> | undefined> {
  let perNode = cache.get(client.settings);
  if (!perNode) cache.set(client.settings, (perNode = new Map()));
  let p = perNode.get(node);
  if (!p) perNode.set(node, (p = listBridges(client, node, log)));
  return p;
}

/** Throw naming every network whose bridge the node does not have. */
export async function assertBridgesExist(
  client: PveClient,
  node: string,
  networks: Array<{ name: string; bridge?: string }>,
  log: Logger,
  outcome = "the container was not created",
): Promise<void> {
  const wanted = networks.filter((n) => n.bridge !== undefined);
  if (!wanted.length) return;
  const have = await nodeBridges(client, node, log);
  if (!have) return;
  const missing = wanted.filter((n) => !have.has(n.bridge!));
  if (!missing.length) return;
  throw new Error(
    missing.map((n) => `networks (${n.name}): bridge '${n.bridge}' does not exist on node ${node}`).join("; ") +
      `. Bridges there: ${[...have].sort().join(", ") || "none"}. Fix the bridge name or create the bridge first; ${outcome}.`,
  );
}
