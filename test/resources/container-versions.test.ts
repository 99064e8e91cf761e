/**
 * Pure rules behind issue 15 items 11 and 16: which inputs a PVE release accepts, and the
 * migration's `target-storage` map (per source storage, never for shared storage, never a
 * single value that would remap volumes the program keeps where they are).
 */
import { expect } from "chai";
import { containerArgsSchema } from "../../provider/resources/container/args";
import { versionProblems } from "../../provider/resources/container/versions";
import { migrationStorageMap, remainingMoves } from "../../provider/resources/container/migration";

const args = (extra: Record<string, unknown>) => containerArgsSchema.parse({ node: "pve1", template: "local:vztmpl/a.tar.zst", ...extra });

describe("Container inputs per PVE release", () => {
  const v90 = { major: 9, minor: 0, version: "9.0.10" };
  const v91 = { major: 9, minor: 1, version: "9.1.2" };

  it("a 9.0 server gets no 9.1 keys and no uncompressed .tar template", () => {
    const a = args({ template: "local:vztmpl/app.tar", entrypoint: "/app", env: { A: "1" }, haManaged: true, networks: [{ name: "eth0", hostManaged: true }] });
    expect(versionProblems(a, v90).map((p) => p.field)).to.deep.equal(["template", "entrypoint", "env", "haManaged", "networks[0].hostManaged"]);
    expect(versionProblems(a, v90)[1].message).to.match(/needs Proxmox VE 9\.1 or newer; the server runs 9\.0\.10/);
    expect(versionProblems(a, v91)).to.deep.equal([]);
    expect(versionProblems(args({}), v90)).to.deep.equal([]);
  });
});

describe("migration target-storage map", () => {
  const volids = { rootfs: "local-lvm:vm-100-disk-0", mp0: "local-lvm:vm-100-disk-1", mp1: "shared-nfs:100/vm-100-disk-2.raw", mp2: "/srv/bind" };
  const shared = new Set(["shared-nfs"]);

  it("maps a source storage only when all its volumes go to one place", () => {
    expect(migrationStorageMap(volids, [{ disk: "rootfs", storage: "local-zfs" }, { disk: "mp0", storage: "local-zfs" }], shared)).to.equal("local-lvm:local-zfs");
    // mp0 moves, rootfs stays on the same source storage: no pair, move_volume afterwards.
    expect(migrationStorageMap(volids, [{ disk: "mp0", storage: "local-zfs" }], shared)).to.equal(undefined);
    // Shared storage is never moved by a migration.
    expect(migrationStorageMap(volids, [{ disk: "mp1", storage: "local-lvm" }], shared)).to.equal(undefined);
  });

  it("leaves for afterwards exactly the moves the migration did not do", () => {
    const after = { ...volids, rootfs: "local-zfs:subvol-100-disk-0" };
    expect(remainingMoves(after, [{ disk: "rootfs", storage: "local-zfs" }, { disk: "mp1", storage: "local-lvm" }])).to.deep.equal([{ disk: "mp1", storage: "local-lvm" }]);
  });
});
