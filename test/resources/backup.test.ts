/**
 * The Backup handler against the sandbox, in process: a backup with notes that change in
 * place, protection set and cleared by the resource, a trigger that makes a new backup
 * (the old one deleted, the new one kept), retainOnDelete, refresh after the backup was
 * deleted or its notes changed outside, the refusal to delete a backup protected outside
 * the program, and input checks that name the field.
 */
import { expect } from "chai";
import fc from "fast-check";
import { startSandbox, type SandboxHandle } from "../../sandbox";
import handler, { vzdumpParams, wantedProtection } from "../../provider/resources/backup/handler";
import { configure } from "../../provider/resources/registry";
import { loadSchema } from "../../provider/proxmox/schema";
import { validateParams } from "../../provider/proxmox/validate";
import { renderNotes, templateFor } from "../../provider/resources/backup/notes";
import { archiveFromLog } from "../../provider/proxmox/vzdump";
import { providerClient } from "../../provider/resources/operation";
import { UNKNOWN } from "../../provider/resources/validation";
import { useSandboxProvider, applianceTemplate, createChecked, startProviderSandbox } from "../support/provider";

type Outs = Record<string, any>;

describe("Backup handler (in process, against the sandbox)", function () {
  this.timeout(60_000);
  let sb: SandboxHandle;
  let template: string;

  before(async () => {
    ({ sb, template } = await startProviderSandbox("alpine"));
  });
  after(async () => {
    await sb?.stop();
  });

  async function container(hostname = "web-1"): Promise<number> {
    const { vmid } = await providerClient().lxc.createContainer({
      node: "pve1",
      config: { ostemplate: template, rootfs: "local-lvm:1", hostname, memory: 512 },
    });
    return vmid;
  }
  const up = (inputs: Record<string, unknown>) => createChecked<Outs>(handler, inputs);
  async function change(olds: { id: string; outs: Outs }, inputs: Record<string, unknown>) {
    const checked = await handler.check!({}, inputs);
    expect(checked.failures ?? []).to.deep.equal([]);
    const diff = await handler.diff!(olds.id, olds.outs, checked.inputs);
    const outs = diff.changes && !diff.replaces?.length ? ((await handler.update!(olds.id, olds.outs, checked.inputs)).outs as Outs) : olds.outs;
    return { diff, outs };
  }
  async function diffFor(olds: { id: string; outs: Outs }, inputs: Record<string, unknown>) {
    return handler.diff!(olds.id, olds.outs, (await handler.check!({}, inputs)).inputs);
  }
  const backups = async (vmid: number, storage = "local") => (await providerClient().storage.content("pve1", storage, { content: "backup", vmid })).map((i) => i.volid);
  const info = (volid: string) => providerClient().storage.volumeInfo("pve1", volid);

  it("makes a backup with notes, refreshes without drift, changes notes and protection in place, deletes", async () => {
    const vmid = await container("web-1");
    const base = { vmid, node: "pve1", storage: "local", notesTemplate: "{{guestname}} on {{node}}", resourceName: "bk" };
    const b = await up(base);
    expect(b.id).to.match(new RegExp(`^local:backup/vzdump-lxc-${vmid}-\\d{4}_\\d{2}_\\d{2}-\\d{2}_\\d{2}_\\d{2}\\.tar\\.zst$`));
    expect(b.outs).to.include({ volume: b.id, backupNode: "pve1", notes: "web-1 on pve1", protected: false, protectedByResource: false });
    expect(b.outs.size).to.be.a("number").and.greaterThan(0);
    expect(b.outs.ctime).to.be.a("number").and.greaterThan(0);
    expect(await backups(vmid)).to.deep.equal([b.id]);

    const read = await handler.read!(b.id, b.outs);
    expect(read).to.deep.equal({ id: b.id, props: b.outs });
    expect((await diffFor({ id: b.id, outs: read.props! }, base)).changes).to.equal(false);

    const notes = await change(b, { ...base, notesTemplate: "vmid {{vmid}}\\nsecond line" });
    expect(notes.diff).to.include({ changes: true });
    expect(notes.diff.replaces).to.deep.equal([]);
    expect(notes.outs).to.include({ volume: b.id, notes: `vmid ${vmid}\nsecond line` });
    expect((await info(b.id)).notes).to.equal(`vmid ${vmid}\nsecond line`);

    const prot = await change({ id: b.id, outs: notes.outs }, { ...base, notesTemplate: "vmid {{vmid}}\\nsecond line", protected: true });
    expect(prot.diff.replaces).to.deep.equal([]);
    expect(prot.outs).to.include({ volume: b.id, protected: true, protectedByResource: true });
    expect(!!(await info(b.id)).protected).to.equal(true);
    expect((await diffFor({ id: b.id, outs: prot.outs }, { ...base, notesTemplate: "vmid {{vmid}}\\nsecond line", protected: true })).changes).to.equal(false);

    // Removing `protected: true` clears the flag this resource set.
    const released = await change({ id: b.id, outs: prot.outs }, { ...base, notesTemplate: "vmid {{vmid}}\\nsecond line" });
    expect(released.diff.changes).to.equal(true);
    expect(released.outs).to.include({ protected: false, protectedByResource: false });

    // Set again, then destroy: the resource clears its own protection and deletes.
    const again = await change({ id: b.id, outs: released.outs }, { ...base, protected: true });
    expect(again.outs).to.include({ protected: true, notes: "web-1 on pve1" });
    await handler.delete!(b.id, again.outs);
    expect(await backups(vmid)).to.deep.equal([]);
    await handler.delete!(b.id, again.outs); // already gone: fine
  });

  it("replaces on a new trigger value: the new backup first, then the old one deleted", async () => {
    const vmid = await container("web-2");
    const base = { vmid, storage: "local", trigger: 1, resourceName: "bk-trigger" };
    const first = await up(base);
    const d = await diffFor(first, { ...base, trigger: 2 });
    expect(d).to.include({ changes: true, deleteBeforeReplace: false });
    expect(d.replaces).to.deep.equal(["trigger"]);
    // Replacement, as the engine runs it: create the new one, delete the old one.
    const second = await up({ ...base, trigger: 2 });
    expect(second.id).to.not.equal(first.id); // never the same second's file name
    await handler.delete!(first.id, first.outs);
    expect(await backups(vmid)).to.deep.equal([second.id]);
    // Removing the trigger only records that; mode/compress/storage replace; node does not.
    expect((await diffFor(second, { vmid, storage: "local" })).replaces).to.deep.equal([]);
    expect((await diffFor(second, { ...base, trigger: 2, compress: "gzip" })).replaces).to.deep.equal(["compress"]);
    expect((await diffFor(second, { ...base, trigger: 2, compress: "zstd", mode: "snapshot" })).changes).to.equal(false);
    expect((await diffFor(second, { ...base, trigger: 2, node: "pve2" })).replaces).to.deep.equal([]);
    await handler.delete!(second.id, second.outs);
  });

  it("retainOnDelete keeps the volume; refresh after an outside delete forgets the backup", async () => {
    const vmid = await container("web-3");
    // No storage: the node's default; PVE takes notes-template only with a storage, so the
    // notes are rendered and written after the backup.
    const kept = await up({ vmid, retainOnDelete: true, compress: "gzip", mode: "stop", notesTemplate: "{{guestname}} ({{vmid}})" });
    expect(kept.id).to.match(/^local:backup\/vzdump-lxc-\d+-.*\.tar\.gz$/);
    expect(kept.outs.notes).to.equal(`web-3 (${vmid})`);
    await handler.delete!(kept.id, kept.outs);
    expect(await backups(vmid)).to.deep.equal([kept.id]);

    await providerClient().storage.deleteVolumeAndWait("pve1", kept.id);
    expect(await handler.read!(kept.id, kept.outs)).to.deep.equal({ id: "", props: {} });
    let err: Error | undefined;
    await handler.update!(kept.id, kept.outs, { vmid, retainOnDelete: false }).catch((e: Error) => (err = e));
    expect(err?.message).to.match(/no longer exists.*pulumi refresh/);
  });

  it("protected without a storage: set right after the backup (PVE takes `protected` only with `storage`)", async () => {
    const vmid = await container("web-p");
    const b = await up({ vmid, protected: true, resourceName: "bk-p" });
    expect(b.outs).to.include({ protected: true, protectedByResource: true });
    expect(!!(await info(b.id)).protected).to.equal(true);
    // The flag this resource set is cleared on delete, and the backup goes.
    await handler.delete!(b.id, b.outs);
    expect(await backups(vmid)).to.deep.equal([]);
  });

  it("refresh shows notes changed outside as a notesTemplate change that `up` reverts", async () => {
    const vmid = await container("web-4");
    const base = { vmid, storage: "local", notesTemplate: "nightly {{vmid}}" };
    const b = await up(base);
    expect(b.outs.notes).to.equal(`nightly ${vmid}`);
    await providerClient().storage.updateVolumeAttributes("pve1", b.id, { notes: "edited by hand\nin the GUI" });
    const read = await handler.read!(b.id, b.outs);
    expect(read.props).to.include({ notes: "edited by hand\nin the GUI", notesTemplate: "edited by hand\\nin the GUI" });
    const step = await change({ id: b.id, outs: read.props as Outs }, { ...base, notesTemplate: "nightly {{vmid}} in {{cluster}}" });
    expect(step.diff).to.include({ changes: true });
    expect(step.diff.replaces).to.deep.equal([]);
    expect(step.outs.notes).to.equal(`nightly ${vmid} in sandbox`);
    expect((await info(b.id)).notes).to.equal(`nightly ${vmid} in sandbox`);
    await handler.delete!(b.id, step.outs);
  });

  it("refuses to delete a backup protected outside the program, naming the fixes", async () => {
    const vmid = await container("web-5");
    const base = { vmid, storage: "local" };
    const b = await up(base);
    await providerClient().storage.updateVolumeAttributes("pve1", b.id, { protected: true });
    const read = await handler.read!(b.id, b.outs);
    expect(read.props).to.include({ protected: true, protectedByResource: false });
    // Not declared: the program leaves the flag alone (no diff).
    expect((await diffFor({ id: b.id, outs: read.props as Outs }, base)).changes).to.equal(false);

    let err: Error | undefined;
    await handler.delete!(b.id, read.props as Outs).catch((e: Error) => (err = e));
    expect(err?.message).to.include(`Backup ${b.id} is protected`);
    expect(err?.message).to.include("retainOnDelete: true");
    expect(err?.message).to.include("protected: true");
    expect(await backups(vmid)).to.deep.equal([b.id]);

    // Declaring protected: true takes the flag over (an update), after which delete clears it.
    const owned = await change({ id: b.id, outs: read.props as Outs }, { ...base, protected: true });
    expect(owned.diff.changes).to.equal(true);
    expect(owned.outs).to.include({ protected: true, protectedByResource: true });
    await handler.delete!(b.id, owned.outs);
    expect(await backups(vmid)).to.deep.equal([]);
  });

  it("waits out the CT's lock (a snapshot running) instead of failing", async () => {
    const vmid = await container("web-7");
    await sb.admin.holdLock(vmid, "snapshot", 1);
    const started = Date.now();
    const b = await up({ vmid, storage: "local" });
    expect(Date.now() - started).to.be.greaterThan(500);
    expect(await backups(vmid)).to.deep.equal([b.id]);
    await handler.delete!(b.id, b.outs);
  });

  it("checks inputs before anything is sent, naming the field and the fix", async () => {
    const bad = await handler.check!({}, { vmid: 100, notesTemplate: "a\nb", compress: "xz", storage: "local" });
    const reasons = (bad.failures ?? []).map((f) => f.reason).join("\n");
    expect(reasons).to.match(/notesTemplate: may not contain a line break.*write \\n/);
    expect(reasons).to.match(/compress: must be one of 'zstd', 'gzip', 'lzo', 'none'/);
    const vars = await handler.check!({}, { vmid: 100, notesTemplate: "{{hostname}}" });
    expect(vars.failures?.[0]?.reason).to.match(/notesTemplate: uses the unknown variable \{\{hostname\}\}; Proxmox knows \{\{cluster\}\}/);

    const vmid = await container("web-6");
    const failure = (p: Promise<unknown>) => p.then(() => "", (e: Error) => e.message);
    expect(await failure(handler.create({ vmid, storage: "local-lvm" }))).to.match(/^storage: 'local-lvm' on node 'pve1' does not take backups.*Storages on 'pve1' that do: 'local'/);
    expect(await failure(handler.create({ vmid: 4242 }))).to.match(/^container: no container 4242 exists/);
    expect(await backups(vmid)).to.deep.equal([]);
  });

  it("at preview, an unknown vmid replaces and an unknown protected/notesTemplate updates", async () => {
    const olds = { vmid: 100, storage: "local", volume: "local:backup/x", protected: false, protectedByResource: false };
    expect((await handler.diff!("local:backup/x", olds, { vmid: UNKNOWN, storage: "local" })).replaces).to.deep.equal(["vmid"]);
    const d = await handler.diff!("local:backup/x", olds, { vmid: 100, storage: "local", protected: UNKNOWN, notesTemplate: UNKNOWN });
    expect(d).to.include({ changes: true });
    expect(d.replaces).to.deep.equal([]);
  });

  it("renders notes as vzdump does, and reads the archive from the task log", () => {
    expect(renderNotes("{{guestname}}\\n{{vmid}} \\\\ {{cluster}}", { guestname: "web", vmid: 101, node: "pve1", cluster: "" })).to.equal("web\n101 \\ ");
    expect(renderNotes(templateFor("a\\b\nc"), { vmid: 1, node: "n" })).to.equal("a\\b\nc");
    expect(archiveFromLog(["INFO: starting new backup job: vzdump 100", "INFO: creating vzdump archive '/var/lib/vz/dump/vzdump-lxc-100-2026_01_02-03_04_05.tar.zst'"])).to.deep.equal({
      name: "vzdump-lxc-100-2026_01_02-03_04_05.tar.zst",
      pbs: false,
    });
    expect(archiveFromLog(["INFO: creating Proxmox Backup Server archive 'ct/100/2026-01-02T03:04:05Z'"])).to.deep.equal({ name: "ct/100/2026-01-02T03:04:05Z", pbs: true });
    expect(wantedProtection(undefined, false)).to.equal(undefined);
    expect(wantedProtection(undefined, true)).to.equal(false);
  });
});

describe("Backup handler: a backup that outlives timeouts.create", function () {
  this.timeout(60_000);
  let sb: SandboxHandle;
  before(async () => {
    sb = await startSandbox({ port: 0, nodes: ["pve1"], taskDurationMs: 2500, authFailureDelayMs: 0 });
    useSandboxProvider(sb);
  });
  after(async () => {
    await sb?.stop();
  });

  it("is recorded (partial failure with the volume), not made twice", async () => {
    const template = await applianceTemplate("alpine", "local");
    const { vmid } = await providerClient().lxc.createContainer({ node: "pve1", config: { ostemplate: template, rootfs: "local-lvm:1", hostname: "slow" } });
    // No storage declared: the node's only backup storage ('local') is where it lands.
    const err = await handler.create({ vmid, timeouts: { create: 1 } }).then(
      () => undefined,
      (e: Error & { id?: string; properties?: Outs }) => e,
    );
    expect(err?.message).to.match(/still running after 1 s\. It was not cancelled/);
    expect(err?.id).to.match(new RegExp(`^local:backup/vzdump-lxc-${vmid}-.*\\.tar\\.zst$`));
    expect(err?.properties).to.include({ volume: err?.id, backupNode: "pve1", vmid });
    // Once the task is done, refresh reads the real backup.
    await new Promise((r) => setTimeout(r, 3500));
    const read = await handler.read!(err!.id!, err!.properties!);
    expect(read.id).to.equal(err!.id);
    expect((read.props as Outs).size).to.be.greaterThan(0);
  });
});

describe("Backup check() (property-based)", () => {
  const junk = fc.oneof(fc.string(), fc.integer(), fc.boolean(), fc.constant(null));
  const maybe = <T>(a: fc.Arbitrary<T>) => fc.option(fc.oneof({ weight: 8, arbitrary: a }, { weight: 1, arbitrary: junk as fc.Arbitrary<unknown> }), { nil: undefined, freq: 2 });
  const inputs = fc.record(
    {
      vmid: fc.oneof(fc.integer({ min: 100, max: 999999999 }), fc.constantFrom(99, 0, -1, 1.5)),
      node: maybe(fc.constantFrom("pve1", "pve-2", "-bad", "")),
      mode: maybe(fc.constantFrom("snapshot", "suspend", "stop", "live")),
      compress: maybe(fc.constantFrom("zstd", "gzip", "lzo", "none", "0", "xz")),
      storage: maybe(fc.constantFrom("local", "backup-nfs", "pbs.1", "Bad Storage", "1abc")),
      notesTemplate: maybe(fc.oneof(fc.string({ maxLength: 40 }), fc.constantFrom("{{guestname}}\\n{{vmid}}", "a\\\\b", "{{nope}}", "x".repeat(1100)))),
      protected: maybe(fc.boolean()),
      retainOnDelete: maybe(fc.boolean()),
      trigger: maybe(fc.oneof(fc.string(), fc.integer(), fc.boolean())),
    },
    { requiredKeys: ["vmid"] },
  );
  before(() => configure({ get: (k) => (k === "proxmox:logLevel" ? "silent" : undefined) }));

  it("names a field in every rejection, and what it accepts is a vzdump request both schemas accept", async () => {
    const props = { "8.4": loadSchema("8.4"), "9.1": loadSchema("9.1") };
    await fc.assert(
      fc.asyncProperty(inputs, async (raw) => {
        const args = Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== undefined));
        const r = await handler.check!({}, args);
        if (r.failures?.length) {
          for (const f of r.failures) expect(f.reason).to.match(new RegExp(`^Backup ${f.property}`));
          return;
        }
        const request = { ...vzdumpParams(r.inputs as never), remove: false, node: "pve1" };
        for (const [v, schema] of Object.entries(props)) {
          const errors = validateParams(schema.method("/nodes/{node}/vzdump", "POST")!.parameters!.properties, request);
          expect(errors, `PVE ${v} schema: ${JSON.stringify(errors)} for ${JSON.stringify(request)}`).to.equal(undefined);
        }
        // PVE's `requires`: notes-template only with storage (not checked by the schema validator).
        if (request["notes-template"] !== undefined) expect(request.storage).to.be.a("string");
      }),
      { numRuns: 300 },
    );
  });
});
