/**
 * The `--state DIR` file is written in batches: a burst of changes (200 parallel deletes in
 * bench/pulumi-up) costs one write per SAVE_WINDOW_MS instead of one per change, and the
 * last changes still reach the file — within the window, and at once on stop.
 */
import { expect } from "chai";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Store, SAVE_WINDOW_MS } from "../../sandbox/state";
import { startSandbox } from "../../sandbox";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("sandbox: batched state saves", function () {
  this.timeout(60_000);
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-persist-"))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const onDisk = () => JSON.parse(fs.readFileSync(path.join(dir, "state.json"), "utf8"));

  it("gathers a burst of changes into one write within the window", async () => {
    const store = new Store(dir, true);
    const file = path.join(dir, "state.json");
    const ino = () => fs.statSync(file).ino; // each atomic write renames a new file into place
    const before = ino();
    for (let i = 0; i < 50; i++) {
      store.state.pools[`p${i}`] = { vms: [], storage: [] };
      store.save();
    }
    expect(ino(), "nothing written synchronously").to.equal(before);
    expect(Object.keys(onDisk().pools)).to.have.length(0);
    await sleep(SAVE_WINDOW_MS + 100);
    const written = ino();
    expect(written).to.not.equal(before);
    expect(Object.keys(onDisk().pools)).to.have.length(50);
    await sleep(SAVE_WINDOW_MS + 50);
    expect(ino(), "no further write without a change").to.equal(written);
  });

  it("flush writes pending changes at once", () => {
    const store = new Store(dir, true);
    store.state.pools.late = { vms: [], storage: [] };
    store.save();
    store.flush();
    expect(onDisk().pools.late).to.deep.equal({ vms: [], storage: [] });
  });

  it("a change made just before stop() is in the state a restarted sandbox reads", async () => {
    const sb = await startSandbox({ port: 0, stateDir: dir, taskDurationMs: 0, authFailureDelayMs: 0 });
    await sb.admin.createUser("late@pve", { comment: "made right before stop" });
    await sb.stop();
    expect(onDisk().users["late@pve"]?.comment).to.equal("made right before stop");
    const again = await startSandbox({ port: 0, stateDir: dir, taskDurationMs: 0, authFailureDelayMs: 0 });
    await again.stop();
    expect(onDisk().users["late@pve"]?.comment).to.equal("made right before stop");
  });
});
