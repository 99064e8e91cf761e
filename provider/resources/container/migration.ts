/**
 * Moving disks together with a node change. PVE's migrate `target-storage` maps source
 * *storages*, not volumes: a single value remaps every local volume (also those the program
 * keeps where they are), and volumes on shared storage are never moved by a migration.
 * So the migration gets a `src:dst` pair only for a local storage all of whose volumes go
 * to the same place; every other requested move is done with move_volume after the
 * migration (the handler re-reads the config, so no requested move is dropped).
 */

export interface DiskMove {
  disk: string;
  storage: string;
}

/**
 * The `target-storage` value for a migration (undefined: none), from the CT's volumes
 * (`rootfs`/`mpN` → volume ID; bind mounts start with '/') and the requested moves.
 */
export function migrationStorageMap(volids: Record<string, string>, moves: DiskMove[], shared: ReadonlySet<string>): string | undefined {
  const target = new Map(moves.map((m) => [m.disk, m.storage]));
  const wanted = new Map<string, Set<string>>();
  for (const [disk, volid] of Object.entries(volids)) {
    if (volid.startsWith("/") || !volid.includes(":")) continue;
    const src = volid.split(":")[0];
    if (!wanted.has(src)) wanted.set(src, new Set());
    wanted.get(src)!.add(target.get(disk) ?? src);
  }
  const pairs: string[] = [];
  for (const [src, dsts] of wanted) {
    if (shared.has(src) || dsts.size !== 1) continue;
    const [dst] = dsts;
    if (dst !== src) pairs.push(`${src}:${dst}`);
  }
  return pairs.length ? pairs.sort().join(",") : undefined;
}

/** The moves still to do after the migration: disks not yet on their requested storage. */
export function remainingMoves(volids: Record<string, string>, moves: DiskMove[]): DiskMove[] {
  return moves.filter((m) => volids[m.disk] !== undefined && volids[m.disk].split(":")[0] !== m.storage);
}
