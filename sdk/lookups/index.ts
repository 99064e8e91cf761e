/** Lookup functions (Pulumi's invoke style): a Promise form and an `…Output` form of each. See docs/lookups.md. */
export { getNodes, getNodesOutput } from "./nodes";
export type { ProxmoxNode, GetNodesResult } from "./nodes";
export { getStorages, getStoragesOutput, getVolumes, getVolumesOutput } from "./storage";
export type { StorageContent, GetStoragesArgs, GetStoragesResult, ProxmoxStorage, GetVolumesArgs, GetVolumesResult, ProxmoxVolume } from "./storage";
export { getContainers, getContainersOutput, getContainer, getContainerOutput, getNextVmid, getNextVmidOutput } from "./containers";
export type { ContainerSummary, GetContainersArgs, GetContainersResult, GetContainerArgs, GetContainerResult, GetNextVmidResult } from "./containers";
export { getAppliances, getAppliancesOutput } from "./appliances";
export type { GetAppliancesArgs, GetAppliancesResult, ProxmoxAppliance } from "./appliances";
export { ProxmoxLookupError } from "./errors";
export type { LookupOutputOptions } from "./invoke";
