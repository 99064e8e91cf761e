/**
 * The typed Proxmox VE API client: the transport (transport.ts — schema check, encoding,
 * credentials, retries, typed errors) with the API areas hung off it: `client.lxc`,
 * `client.cluster`, `client.storage`, `client.tasks`. The areas use the transport; the
 * transport does not know them (what a retry must verify about an area's objects is passed
 * in by the area as `verifyEffect`).
 */
import { getLogger } from "../logging";
import { parseSettings, type ConfigValues, type ConnectionSettings } from "./settings";
import { PveTransport, type TransportOptions } from "./transport";
import { LxcApi, type CreateContainerOptions, type CreateContainerResult } from "./lxc";
import { ClusterApi } from "./cluster";
import { StorageApi } from "./storage";
import { TasksApi, type WaitOptions, type TaskResult } from "./tasks";

export type { RequestOptions, VersionInfo, EffectVerifier } from "./transport";
export type PveClientOptions = TransportOptions;

export class PveClient extends PveTransport {
  /** Build a client from parsed settings. */
  static fromSettings(settings: ConnectionSettings, opts: PveClientOptions = {}): PveClient {
    const log = (opts.logger ?? getLogger()).child({ component: "pve-client" });
    let client: PveClient | undefined;
    const state = PveTransport.createState(settings, opts, log, () => client!);
    client = new PveClient(state, log);
    return client;
  }

  /** Parse `proxmox:*` config values (with env fallback) and build a client. */
  static connect(config: ConfigValues = {}, opts: PveClientOptions = {}): PveClient {
    return PveClient.fromSettings(parseSettings(config), opts);
  }

  get lxc(): LxcApi {
    return new LxcApi(this);
  }
  get cluster(): ClusterApi {
    return new ClusterApi(this);
  }
  get storage(): StorageApi {
    return new StorageApi(this);
  }
  get tasks(): TasksApi {
    return new TasksApi(this);
  }

  /** Wait for a worker task (see tasks.ts). */
  waitForTask(upid: string, opts?: WaitOptions): Promise<TaskResult> {
    return this.tasks.wait(upid, opts);
  }

  /** Create a CT, allocating a free VMID when none is given (see lxc.ts). */
  createContainer(opts: CreateContainerOptions): Promise<CreateContainerResult> {
    return this.lxc.createContainer(opts);
  }
}

/** Convenience: parse config values and build a client. */
export function connect(config: ConfigValues = {}, opts: PveClientOptions = {}): PveClient {
  return PveClient.connect(config, opts);
}
