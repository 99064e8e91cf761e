/**
 * The per-CT config flock `/run/lock/lxc/pve-config-<vmid>.lock` (BEHAVIOR.md §4.12):
 * handlers and workers take it around config changes; a holder that keeps it longer than
 * the waiter's timeout (10 s, 5 s for create) makes the waiter fail with PVE's text.
 */
import { fail } from "./http/errors";

export class FlockManager {
  private holders = new Map<number, Array<() => void>>();
  private held = new Set<number>();

  constructor(private readonly timeoutScale = 1) {}

  isHeld(vmid: number): boolean {
    return this.held.has(vmid);
  }

  /** Acquire; resolves to a release function or rejects with PVE's timeout text. */
  acquire(vmid: number, timeoutSec = 10): Promise<() => void> {
    const release = () => {
      const q = this.holders.get(vmid);
      const next = q?.shift();
      if (next) next();
      else this.held.delete(vmid);
    };
    if (!this.held.has(vmid)) {
      this.held.add(vmid);
      return Promise.resolve(release);
    }
    return new Promise((resolve, reject) => {
      const q = this.holders.get(vmid) ?? [];
      const grant = () => {
        clearTimeout(timer);
        resolve(release);
      };
      const timer = setTimeout(() => {
        const i = q.indexOf(grant);
        if (i >= 0) q.splice(i, 1);
        reject(fail(`can't lock file '/run/lock/lxc/pve-config-${vmid}.lock' - got timeout`));
      }, timeoutSec * 1000 * this.timeoutScale);
      q.push(grant);
      this.holders.set(vmid, q);
    });
  }

  async with<T>(vmid: number, fn: () => T | Promise<T>, timeoutSec = 10): Promise<T> {
    const release = await this.acquire(vmid, timeoutSec);
    try {
      return await fn();
    } finally {
      release();
    }
  }
}
