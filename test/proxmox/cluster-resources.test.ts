/**
 * ClusterApi.resources shares GET /cluster/resources between concurrent callers of one
 * connection (N parallel deletes each locate their CT twice), without ever answering a
 * caller with a request sent before it asked.
 */
import { expect } from "chai";
import { ClusterApi } from "../../provider/proxmox/cluster";
import type { PveClient } from "../../provider/proxmox/client";

/** A client whose GETs stay open until the test answers them. */
function fakeClient() {
  const sent: Array<{ resolve: (v: unknown) => void; reject: (e: Error) => void; n: number }> = [];
  const client = {
    settings: {},
    get: () =>
      new Promise((resolve, reject) => {
        sent.push({ resolve, reject, n: sent.length + 1 });
      }),
  };
  const answer = (i: number) => sent[i].resolve([{ id: `lxc/${100 + i}`, type: "lxc", vmid: 100 + i, node: "pve1" }]);
  return { cluster: () => new ClusterApi(client as unknown as PveClient), sent, answer };
}
const tick = () => new Promise((r) => setImmediate(r));

describe("ClusterApi.resources: concurrent callers share requests", () => {
  it("callers that arrive while one is in flight share the next request, not the one in flight", async () => {
    const f = fakeClient();
    const first = f.cluster().resources("vm");
    const later = [f.cluster().findGuest(101).then((g) => (g ? [g] : [])), f.cluster().resources("vm"), f.cluster().containers()];
    await tick();
    expect(f.sent).to.have.length(1);
    f.answer(0);
    expect((await first)[0].vmid).to.equal(100);
    await tick();
    expect(f.sent, "one more request for the three later callers").to.have.length(2);
    f.answer(1);
    const [guest, all, cts] = await Promise.all(later);
    expect(guest[0]?.vmid).to.equal(101);
    expect(all[0].vmid).to.equal(101);
    expect(cts[0].vmid).to.equal(101);
    // Nothing in flight: the next caller sends its own.
    const again = f.cluster().resources("vm");
    await tick();
    expect(f.sent).to.have.length(3);
    f.answer(2);
    expect((await again)[0].vmid).to.equal(102);
  });

  it("a failed request fails its callers only; the queued callers still get their own request", async () => {
    const f = fakeClient();
    const first = f.cluster().resources("vm");
    const queued = f.cluster().resources("vm");
    f.sent[0].reject(new Error("boom"));
    await first.then(
      () => expect.fail("should fail"),
      (e: Error) => expect(e.message).to.equal("boom"),
    );
    await tick();
    f.answer(1);
    expect((await queued)[0].vmid).to.equal(101);
  });

  it("different types and different connections do not share", async () => {
    const a = fakeClient();
    const b = fakeClient();
    void a.cluster().resources("vm");
    void a.cluster().resources("storage");
    void b.cluster().resources("vm");
    await tick();
    expect(a.sent).to.have.length(2);
    expect(b.sent).to.have.length(1);
  });
});
