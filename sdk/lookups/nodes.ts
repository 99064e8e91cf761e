/**
 * getNodes: the cluster's nodes (GET /nodes), with their status and size. A node that is
 * offline is listed with `status: "offline"` and without the live figures.
 */
import type * as pulumi from "@pulumi/pulumi";
import { z } from "zod";
import { compact, runLookup, runLookupOutput, type LookupDefinition, type LookupOutputOptions } from "./invoke";

export interface ProxmoxNode {
  /** Node name, e.g. "pve1". */
  node: string;
  /** "online", "offline" or "unknown". */
  status: string;
  /** Logical CPUs. */
  maxCpu?: number;
  /** Memory in bytes. */
  maxMemory?: number;
  /** Seconds since boot. */
  uptime?: number;
  /** SHA-256 fingerprint of the node's certificate (what `proxmox:tlsFingerprint` pins). */
  sslFingerprint?: string;
}

export interface GetNodesResult {
  /** Sorted by name. */
  nodes: ProxmoxNode[];
}

export type GetNodesArgs = Record<string, never>;

const definition: LookupDefinition<GetNodesArgs, GetNodesResult> = {
  name: "getNodes",
  schema: z.object({}).strict() as unknown as z.ZodType<GetNodesArgs, z.ZodTypeDef, unknown>,
  async fetch(client) {
    const nodes = (await client.cluster.nodes()).map((n) => compact({
      node: n.node,
      status: n.status,
      maxCpu: n.maxcpu,
      maxMemory: n.maxmem,
      uptime: n.uptime,
      sslFingerprint: n.ssl_fingerprint,
    }));
    return { nodes: nodes.sort((a, b) => a.node.localeCompare(b.node)) };
  },
};

/** The cluster's nodes. Sends its request when called (in a preview too). */
export function getNodes(): Promise<GetNodesResult> {
  return runLookup(definition, {});
}

/** The cluster's nodes as an Output; resolved during a preview too unless `opts.preview` is "skip". */
export function getNodesOutput(opts?: LookupOutputOptions): pulumi.Output<GetNodesResult> {
  return runLookupOutput(definition, {}, opts);
}
