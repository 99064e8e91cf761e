/**
 * Does the bridge a network device names exist on the node? PVE creates a CT with any
 * bridge name and only the start fails (`bridge 'vmbr9' does not exist`), leaving a CT
 * that cannot run. So the handler asks once per node and run — GET
 * /nodes/{node}/network?type=any_bridge (any user may; Linux and OVS bridges and, since PVE
 * 8, the SDN VNets the user may use) — and refuses an unknown bridge before creating. Only
 * when a name is not there is /cluster/sdn/vnets asked too (once per run, for the whole
 * cluster), for releases whose node list lacks the VNets. When the node cannot be asked,
 * nothing is refused.
 */
import { z } from "zod";
import type { PveClient } from "../../proxmox/client";
import type { ConnectionSettings } from "../../proxmox/settings";
import type { Logger } from "../../logging";

const IfaceSchema = z.array(z.object({ iface: z.string(), type: z.string().optional() }).passthrough());
const VnetSchema = z.array(z.object({ vnet: z.string() }).passthrough());
const BRIDGE_TYPES = new Set(["bridge", "OVSBridge", "vnet"]);

/** Per connection (shared by every view of a client): node → its bridge names (undefined if unknown); "" → the cluster's VNets. */
const cache = new WeakMap<ConnectionSettings, Map<string, Promise<Set<string> | undefined>>>();

function cached(client: PveClient, key: string, load: () => Promise<Set<string> | undefined>): Promise<Set<string> | undefined> {
  let perConnection = cache.get(client.settings);
  if (!perConnection) cache.set(client.settings, (perConnection = new Map()));
  let p = perConnection.get(key);
  if (!p) perConnection.set(key, (p = load()));
  return p;
}

export function nodeBridges(client: PveClient, node: string, log: Logger): Promise<Set<string> | undefined> {
  return cached(client, `node:${node}`, async () => {
    try {
      const ifaces = await client.get(`/nodes/${encodeURIComponent(node)}/network`, { type: "any_bridge" }, { schema: IfaceSchema, logger: log });
      return new Set(ifaces.filter((i) => i.type === undefined || BRIDGE_TYPES.has(i.type)).map((i) => i.iface));
    } catch (e) {
      log.debug({ node, err: (e as Error).message }, "node network not readable; bridges are not checked before create");
      return undefined;
    }
  });
}

function clusterVnets(client: PveClient, log: Logger): Promise<Set<string> | undefined> {
  return cached(client, "", async () => {
    try {
      return new Set((await client.get("/cluster/sdn/vnets", undefined, { schema: VnetSchema, logger: log })).map((v) => v.vnet));
    } catch (e) {
      log.debug({ err: (e as Error).message }, "SDN VNets not readable; checking node bridges only");
      return new Set<string>();
    }
  });
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
  const onNode = await nodeBridges(client, node, log);
  if (!onNode) return;
  if (wanted.every((n) => onNode.has(n.bridge!))) return;
  const have = new Set([...onNode, ...((await clusterVnets(client, log)) ?? [])]);
  const missing = wanted.filter((n) => !have.has(n.bridge!));
  if (!missing.length) return;
  throw new Error(
    missing.map((n) => `networks (${n.name}): bridge '${n.bridge}' does not exist on node ${node}`).join("; ") +
      `. Bridges there: ${[...have].sort().join(", ") || "none"}. Fix the bridge name or create the bridge first; ${outcome}.`,
  );
}
