/** Every API route the sandbox implements, registered on the core's route table. */
import type { Core } from "./core";
import { registerCluster } from "./model/cluster";
import { registerCreate } from "./model/lxc/create";
import { registerLifecycle } from "./model/lxc/lifecycle";
import { registerStorage } from "./model/storage/routes";

export function registerRoutes(core: Core): void {
  registerCluster(core);
  registerCreate(core);
  registerLifecycle(core);
  registerStorage(core);
}
