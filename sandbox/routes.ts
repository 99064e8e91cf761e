/** Every API route the sandbox implements, registered on the core's route table. */
import type { Core } from "./core";
import { registerCluster } from "./model/cluster";
import { registerCreate } from "./model/lxc/create";
import { registerLifecycle } from "./model/lxc/lifecycle";
import { registerVolumes } from "./model/lxc/volumes";
import { registerMigrate } from "./model/lxc/migrate";
import { registerClone } from "./model/lxc/clone";
import { registerBackup } from "./model/lxc/backup";
import { registerSnapshots } from "./model/lxc/snapshots";
import { registerInterfaces } from "./model/lxc/interfaces";
import { registerPools } from "./model/pools";
import { registerStorage } from "./model/storage/routes";
import { registerAccess } from "./model/access";

export function registerRoutes(core: Core): void {
  registerCluster(core);
  registerCreate(core);
  registerLifecycle(core);
  registerVolumes(core);
  registerMigrate(core);
  registerClone(core);
  registerBackup(core);
  registerSnapshots(core);
  registerInterfaces(core);
  registerPools(core);
  registerStorage(core);
  registerAccess(core);
}
