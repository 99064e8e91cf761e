/**
 * PVE privileges and the built-in roles (pve-access-control `AccessControl.pm`
 * `$privgroups` / `create_roles`), so ACLs set by tests mean what they mean on PVE.
 */
export const ALL_PRIVS = [
  "VM.Allocate", "VM.Audit", "VM.Backup", "VM.Clone", "VM.Config.CDROM", "VM.Config.CPU", "VM.Config.Cloudinit",
  "VM.Config.Disk", "VM.Config.HWType", "VM.Config.Memory", "VM.Config.Network", "VM.Config.Options", "VM.Console",
  "VM.Migrate", "VM.PowerMgmt", "VM.Snapshot", "VM.Snapshot.Rollback", "VM.GuestAgent.Audit", "VM.GuestAgent.Unrestricted",
  "VM.Replicate",
  "Datastore.Allocate", "Datastore.AllocateSpace", "Datastore.AllocateTemplate", "Datastore.Audit",
  "Sys.Audit", "Sys.Modify", "Sys.Console", "Sys.PowerMgmt", "Sys.Syslog", "Sys.Incoming", "Sys.AccessNetwork",
  "Pool.Allocate", "Pool.Audit", "SDN.Allocate", "SDN.Audit", "SDN.Use", "Permissions.Modify", "User.Modify",
  "Group.Allocate", "Realm.Allocate", "Realm.AllocateUser", "Mapping.Audit", "Mapping.Modify", "Mapping.Use",
];

const VM_USER = ["VM.Audit", "VM.Console", "VM.Backup", "VM.PowerMgmt", "VM.Config.CDROM", "VM.Config.Cloudinit", "VM.GuestAgent.Audit"];
const VM_ADMIN = ALL_PRIVS.filter((p) => p.startsWith("VM.")).concat(["Pool.Audit", "Sys.Audit", "Sys.Console", "Datastore.Audit"]);

export const ROLES: Record<string, string[]> = {
  Administrator: ALL_PRIVS,
  NoAccess: [],
  PVEAdmin: ALL_PRIVS.filter((p) => !["Sys.PowerMgmt", "Sys.Modify", "Realm.Allocate", "Permissions.Modify"].includes(p)),
  PVEAuditor: ALL_PRIVS.filter((p) => p.endsWith(".Audit")),
  PVEVMAdmin: VM_ADMIN,
  PVEVMUser: VM_USER,
  PVETemplateUser: ["VM.Clone", "VM.Audit"],
  PVEDatastoreAdmin: ["Datastore.Allocate", "Datastore.AllocateSpace", "Datastore.AllocateTemplate", "Datastore.Audit"],
  PVEDatastoreUser: ["Datastore.AllocateSpace", "Datastore.Audit"],
  PVEPoolAdmin: ["Pool.Allocate", "Pool.Audit"],
  PVEPoolUser: ["Pool.Audit"],
  PVESDNUser: ["SDN.Audit", "SDN.Use"],
  PVESDNAdmin: ["SDN.Allocate", "SDN.Audit", "SDN.Use"],
  PVESysAdmin: ["Sys.Audit", "Sys.Console", "Sys.Syslog", "Sys.Modify", "Sys.AccessNetwork", "Pool.Audit", "Permissions.Modify"],
  PVEUserAdmin: ["User.Modify", "Group.Allocate", "Realm.AllocateUser"],
};

export function rolePrivs(roleOrPriv: string): string[] {
  if (ROLES[roleOrPriv]) return ROLES[roleOrPriv];
  if (ALL_PRIVS.includes(roleOrPriv)) return [roleOrPriv];
  throw new Error(`role '${roleOrPriv}' does not exist`);
}
