import { describe, expect, it } from "vitest";
import type { SystemMetrics, SystemSample } from "./system";
import { gpuHint, HINT_MIN_SAMPLES, systemCharts, systemSample } from "./system";

const GIB = 1024 ** 3;

function sample(t: number, utilization: number[], extra: Partial<SystemMetrics> = {}): SystemSample {
  return {
    t,
    system: {
      cpu_percent: 150,
      ram_bytes: 2 * GIB,
      gpus: utilization.map((ratio, index) => ({
        index,
        utilization_ratio: ratio,
        memory_used_bytes: (index + 1) * GIB,
        memory_total_bytes: 80 * GIB,
      })),
      ...extra,
    },
  };
}

const run = (n: number, utilization: number[], extra: Partial<SystemMetrics> = {}) =>
  Array.from({ length: n }, (_, i) => sample(i * 15, utilization, extra));

describe("system samples", () => {
  it("reads a heartbeat's system object with its time, and nothing from one without", () => {
    const data = { epoch: 1, system: { cpu_percent: 99, ram_bytes: 5 } };
    expect(systemSample(data, "2026-12-07T03:00:00Z")).toEqual({
      t: Date.UTC(2026, 11, 7, 3) / 1000,
      system: data.system,
    });
    expect(systemSample({ epoch: 1 }, "2026-12-07T03:00:00Z")).toBeNull();
    expect(systemSample({ system: { cpu_percent: "x" } }, "2026-12-07T03:00:00Z")).toBeNull();
  });

  it("charts each GPU and leaves out series no heartbeat reported", () => {
    const charts = systemCharts([sample(0, [0.5, 1], { data_wait_ratio: 0.25 }), sample(15, [0.75, 1])]);
    expect(charts.busy.names).toEqual(["GPU 0 utilisation %", "GPU 1 utilisation %", "waiting for data %"]);
    expect(charts.busy.columns).toEqual([
      [0, 15],
      [50, 75],
      [100, 100],
      [25, null],
    ]);
    expect(charts.memory.columns).toEqual([
      [0, 15],
      [2, 2],
      [1, 1],
      [2, 2],
    ]);
    expect(charts.throughput.names).toEqual([]); // no samples/s reported
    expect(systemCharts([]).cpu).toEqual({ names: [], columns: [[]] });
  });
});

describe("the idle-GPU hint", () => {
  it("blames the data loader when GPUs idle while the steps wait for data", () => {
    const hint = gpuHint(run(5, [0.1, 0.14], { samples_per_s: 80, data_wait_ratio: 0.7 }));
    expect(hint).toMatchObject({ utilizationPercent: 12, dataBound: true });
    expect(hint?.message).toMatch(/^GPU utilisation 12 %: the data loader is the bottleneck/);
  });

  it("words it otherwise when the steps hardly wait for data", () => {
    const hint = gpuHint(run(5, [0.2], { samples_per_s: 500, data_wait_ratio: 0.05 }));
    expect(hint?.dataBound).toBe(false);
    expect(hint?.message).toMatch(/^GPU utilisation 20 %: the GPUs sit idle most of the time, yet/);
    expect(gpuHint(run(5, [0.2]))?.message).not.toMatch(/data loader is the bottleneck/);
  });

  it("stays quiet for busy GPUs, CPU runs and the first heartbeats", () => {
    expect(gpuHint(run(10, [0.95], { samples_per_s: 900, data_wait_ratio: 0.9 }))).toBeNull();
    expect(gpuHint(run(10, [], { data_wait_ratio: 0.9 }))).toBeNull();
    expect(gpuHint(run(HINT_MIN_SAMPLES - 1, [0.01]))).toBeNull();
    expect(gpuHint(run(HINT_MIN_SAMPLES, [0.01]))).not.toBeNull();
  });

  it("judges the recent heartbeats that saw training steps, not set-up or validation", () => {
    const setUp = run(20, [0]); // dataset download: idle GPUs, no steps yet
    const training = run(4, [0.9], { samples_per_s: 700, data_wait_ratio: 0.1 });
    const validating = run(6, [0.02]); // no steps in these windows
    expect(gpuHint([...setUp, ...training, ...validating])).toBeNull();
    const slowedDown = run(10, [0.1], { samples_per_s: 50, data_wait_ratio: 0.8 });
    expect(gpuHint([...training, ...slowedDown])?.utilizationPercent).toBe(10); // the last 10 only
  });
});
