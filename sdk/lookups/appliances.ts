/**
 * getAppliances: the node's appliance index (GET /nodes/{node}/aplinfo, what `pveam
 * available` lists) — template names to give a Template's `appliance`.
 */
import type * as pulumi from "@pulumi/pulumi";
import { z } from "zod";
import { compact, runLookup, runLookupOutput, type Inputs, type LookupDefinition, type LookupOutputOptions } from "./invoke";

export interface GetAppliancesArgs {
  node: string;
  /** Only this section of the index: "system" (OS templates), "turnkeylinux", "mail", … */
  section?: string;
}

export interface ProxmoxAppliance {
  /** File name, e.g. "debian-12-standard_12.7-1_amd64.tar.zst": a Template's `appliance`. */
  template: string;
  package?: string;
  version?: string;
  os?: string;
  section?: string;
  headline?: string;
  /** Download URL. */
  location?: string;
  sha512sum?: string;
  architecture?: string;
}

export interface GetAppliancesResult {
  /** Sorted by template name. */
  appliances: ProxmoxAppliance[];
}

const definition: LookupDefinition<GetAppliancesArgs, GetAppliancesResult> = {
  name: "getAppliances",
  schema: z.object({ node: z.string().min(1, "must be a node name, e.g. 'pve1'"), section: z.string().min(1).optional() }).strict(),
  async fetch(client, args) {
    const list = (await client.storage.aplinfo(args.node))
      .filter((a) => args.section === undefined || a.section === args.section)
      .map((a) =>
        compact({
          template: a.template,
          package: a.package,
          version: a.version,
          os: a.os,
          section: a.section,
          headline: a.headline,
          location: a.location,
          sha512sum: a.sha512sum,
          architecture: a.architecture,
        }),
      );
    return { appliances: list.sort((a, b) => a.template.localeCompare(b.template)) };
  },
};

/** The node's appliance index. Sends its request when called (in a preview too). */
export function getAppliances(args: GetAppliancesArgs): Promise<GetAppliancesResult> {
  return runLookup(definition, args);
}

/** The node's appliance index as an Output; resolved during a preview too unless `opts.preview` is "skip". */
export function getAppliancesOutput(args: Inputs<GetAppliancesArgs>, opts?: LookupOutputOptions): pulumi.Output<GetAppliancesResult> {
  return runLookupOutput(definition, args, opts);
}
