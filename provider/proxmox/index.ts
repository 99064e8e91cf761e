/**
 * The Proxmox VE API client. Start here:
 *
 *   const client = PveClient.connect(configValues, { logger });      // or
 *   const client = PveClient.fromSettings(parseSettings(configValues), { logger });
 *   const { vmid, upid } = await client.createContainer({ node, config: { ostemplate, rootfs: "local-lvm:8" } });
 *   await client.lxc.updateConfig(node, vmid, { set: { memory: 1024 }, delete: ["swap"], digest });
 *   await client.lxc.startAndWait(node, vmid);
 *   await client.storage.upload({ node, storage: "local", content: "vztmpl", filePath });
 *   client.withLogger(log.child({ urn, op: "update" })).lxc.getConfig(node, vmid);
 */
export { PveClient, connect } from "./client";
export type { PveClientOptions, RequestOptions, VersionInfo } from "./client";
export * from "./errors";
export * from "./settings";
export * from "./coerce";
export { TasksApi } from "./tasks";
export type { TaskResult, WaitOptions, TaskStatus, TaskLogLine, TaskListItem, TaskListFilter } from "./tasks";
export { LxcApi, configMatches } from "./lxc";
export type { LxcConfig, LxcStatus, LxcConfigInput, Snapshot, PendingItem, LxcInterface, CreateContainerOptions, CreateContainerResult, UpdateConfigOptions } from "./lxc";
export { ClusterApi } from "./cluster";
export type { NodeInfo, ClusterResource, Pool } from "./cluster";
export { StorageApi } from "./storage";
export type { StorageInfo, ContentItem, AplInfo, ContentType, VolumeInfo } from "./storage";
export { VzdumpApi, archiveFromLog, backupVolid } from "./vzdump";
export type { VzdumpParams, VzdumpMode, VzdumpCompress, ArchiveTarget } from "./vzdump";
export { uploadFile, sha256File, normalizeUploadFilename } from "./upload";
export type { UploadOptions, UploadResult, UploadProgress, ChecksumAlgorithm } from "./upload";
export { DEFAULT_RETRY_POLICY } from "./retry";
export { VmidAllocator, vmidAllocator } from "./vmids";
export type { VmidSource } from "./vmids";
export type { RetryPolicy } from "./retry";
export { TlsPinMismatchError } from "./tlsAgent";
export type { Params, ParamValue } from "./encode";
