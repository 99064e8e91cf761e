/**
 * In-process metrics: per API call and per provider operation. Kept as plain aggregates
 * (count, sum, buckets) so they cost nothing on the hot path, and exported in the
 * Prometheus text exposition format on request.
 */
import { promises as fs } from "node:fs";
import * as path from "node:path";

const DURATION_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

type Labels = Record<string, string>;

class Histogram {
  readonly series = new Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>();
  constructor(readonly name: string, readonly help: string, readonly buckets = DURATION_BUCKETS_S) {}
  observe(labels: Labels, value: number): void {
    const key = labelKey(labels);
    let s = this.series.get(key);
    if (!s) {
      s = { labels, counts: new Array(this.buckets.length).fill(0), sum: 0, count: 0 };
      this.series.set(key, s);
    }
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]) s.counts[i]++;
    s.sum += value;
    s.count++;
  }
  render(): string[] {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const s of this.series.values()) {
      this.buckets.forEach((b, i) => lines.push(`${this.name}_bucket${fmtLabels({ ...s.labels, le: String(b) })} ${s.counts[i]}`));
      lines.push(`${this.name}_bucket${fmtLabels({ ...s.labels, le: "+Inf" })} ${s.count}`);
      lines.push(`${this.name}_sum${fmtLabels(s.labels)} ${s.sum}`);
      lines.push(`${this.name}_count${fmtLabels(s.labels)} ${s.count}`);
    }
    return lines;
  }
}

class Counter {
  readonly series = new Map<string, { labels: Labels; value: number }>();
  constructor(readonly name: string, readonly help: string) {}
  inc(labels: Labels, by = 1): void {
    const key = labelKey(labels);
    const s = this.series.get(key);
    if (s) s.value += by;
    else this.series.set(key, { labels, value: by });
  }
  get(labels: Labels): number {
    return this.series.get(labelKey(labels))?.value ?? 0;
  }
  render(): string[] {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    for (const s of this.series.values()) lines.push(`${this.name}${fmtLabels(s.labels)} ${s.value}`);
    return lines;
  }
}

function labelKey(labels: Labels): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(",");
}

function fmtLabels(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`);
  return parts.length ? `{${parts.join(",")}}` : "";
}

export class MetricsRegistry {
  readonly apiDuration = new Histogram("pve_api_request_duration_seconds", "Proxmox API request duration by endpoint template, method and status.");
  readonly apiRequests = new Counter("pve_api_requests_total", "Proxmox API requests by endpoint template, method and status.");
  readonly apiBytes = new Counter("pve_api_bytes_total", "Bytes sent and received by the Proxmox API client.");
  readonly apiRetries = new Counter("pve_api_retries_total", "Retries made by the Proxmox API client.");
  readonly opDuration = new Histogram("pve_provider_operation_duration_seconds", "Provider operation duration by resource type, operation and outcome.");
  readonly counters = new Map<string, Counter>();

  recordApiCall(c: { endpoint: string; method: string; status: number | string; durationMs: number; bytesIn?: number; bytesOut?: number; retries?: number }): void {
    const labels = { endpoint: c.endpoint, method: c.method, status: String(c.status) };
    this.apiRequests.inc(labels);
    this.apiDuration.observe(labels, c.durationMs / 1000);
    if (c.bytesIn) this.apiBytes.inc({ endpoint: c.endpoint, direction: "in" }, c.bytesIn);
    if (c.bytesOut) this.apiBytes.inc({ endpoint: c.endpoint, direction: "out" }, c.bytesOut);
    if (c.retries) this.apiRetries.inc({ endpoint: c.endpoint, method: c.method }, c.retries);
  }

  recordOperation(o: { resourceType: string; operation: string; outcome: "ok" | "error"; durationMs: number }): void {
    this.opDuration.observe({ resource_type: o.resourceType, operation: o.operation, outcome: o.outcome }, o.durationMs / 1000);
  }

  /** A named counter for ad-hoc figures (the sandbox counts requests per endpoint this way). */
  counter(name: string, help: string): Counter {
    let c = this.counters.get(name);
    if (!c) {
      c = new Counter(name, help);
      this.counters.set(name, c);
    }
    return c;
  }

  toPrometheus(): string {
    const all = [this.apiRequests, this.apiDuration, this.apiBytes, this.apiRetries, this.opDuration, ...this.counters.values()];
    return all.flatMap((m) => m.render()).join("\n") + "\n";
  }

  /** Written atomically so a scraper never reads half a file. */
  async writeFile(file: string): Promise<void> {
    await fs.mkdir(path.dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    await fs.writeFile(tmp, this.toPrometheus());
    await fs.rename(tmp, file);
  }

  reset(): void {
    for (const m of [this.apiRequests, this.apiDuration, this.apiBytes, this.apiRetries, this.opDuration]) m.series.clear();
    this.counters.clear();
  }
}

/** The process-wide registry. */
export const metrics = new MetricsRegistry();
