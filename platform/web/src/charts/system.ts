// A run's system metrics, one sample per heartbeat (the `system` object of its data, see
// docs/trainer-contract.md): chart columns over time, and the idle-GPU hint.
import type { components } from "../api/openapi";
import type { ChartData } from "./series";

export type SystemMetrics = components["schemas"]["SystemMetrics"];

export interface SystemSample {
  /** When the heartbeat was stored, in seconds since the epoch (uPlot's time axis). */
  t: number;
  system: SystemMetrics;
}

/** Samples kept per job: at the default 15 s keep-alive, the last ~2.5 hours. */
export const MAX_SYSTEM_SAMPLES = 600;

const GIB = 1024 ** 3;

/** The heartbeat's system sample, or null when it carried none (an older trainer). */
export function systemSample(data: Record<string, unknown>, createdAt: string): SystemSample | null {
  const system = data["system"];
  if (typeof system !== "object" || system === null) return null;
  const { cpu_percent: cpu, ram_bytes: ram } = system as Partial<SystemMetrics>;
  if (typeof cpu !== "number" || typeof ram !== "number") return null;
  const t = Date.parse(createdAt) / 1000;
  return Number.isFinite(t) ? { t, system: system as SystemMetrics } : null;
}

function gpuIndexes(samples: SystemSample[]): number[] {
  const indexes = new Set<number>();
  for (const sample of samples) for (const gpu of sample.system.gpus ?? []) indexes.add(gpu.index);
  return [...indexes].sort((a, b) => a - b);
}

function columns(samples: SystemSample[], series: [string, (s: SystemMetrics) => number | null | undefined][]): ChartData {
  const kept = series.filter(([, value]) => samples.some((sample) => typeof value(sample.system) === "number"));
  return {
    names: kept.map(([name]) => name),
    columns: [
      samples.map((sample) => sample.t),
      ...kept.map(([, value]) => samples.map((sample) => value(sample.system) ?? null)),
    ],
  };
}

const gpu = (s: SystemMetrics, index: number) => (s.gpus ?? []).find((g) => g.index === index);
const percent = (ratio: number | null | undefined) => (typeof ratio === "number" ? 100 * ratio : null);

/** The four charts of the job page: CPU, memory, GPU utilisation with the data wait, throughput. */
export function systemCharts(samples: SystemSample[]): Record<"cpu" | "memory" | "busy" | "throughput", ChartData> {
  const gpus = gpuIndexes(samples);
  return {
    cpu: columns(samples, [["CPU % (100 = one core)", (s) => s.cpu_percent]]),
    memory: columns(samples, [
      ["RAM GiB", (s) => s.ram_bytes / GIB],
      ...gpus.map((i): [string, (s: SystemMetrics) => number | null] => [
        `GPU ${i} memory GiB`,
        (s) => {
          const used = gpu(s, i)?.memory_used_bytes;
          return typeof used === "number" ? used / GIB : null;
        },
      ]),
    ]),
    busy: columns(samples, [
      ...gpus.map((i): [string, (s: SystemMetrics) => number | null] => [
        `GPU ${i} utilisation %`,
        (s) => percent(gpu(s, i)?.utilization_ratio),
      ]),
      ["waiting for data %", (s) => percent(s.data_wait_ratio)],
    ]),
    throughput: columns(samples, [["samples/s", (s) => s.samples_per_s]]),
  };
}

// The idle-GPU hint. Computed here, not by the backend: it is a reading of the heartbeat
// series the page already holds (live, through the stream), and this page is its only reader;
// a backend field would be recomputed on every job read and lag the stream. One function, one
// test (system.test.ts).

/** Heartbeats the hint looks at: the recent ones, about 2.5 minutes at the default keep-alive. */
export const HINT_WINDOW = 10;
/** Fewer qualifying heartbeats than this: too early to judge (start-up, one slow batch). */
export const HINT_MIN_SAMPLES = 3;
/** Mean GPU utilisation below this: the GPUs sit idle most of the time. */
export const IDLE_GPU_RATIO = 0.3;
/** Mean share of step time spent waiting for data at or above this: the loader is to blame. */
export const DATA_BOUND_RATIO = 0.5;

export interface GpuHint {
  utilizationPercent: number;
  dataBound: boolean;
  message: string;
}

const mean = (values: number[]) => values.reduce((sum, v) => sum + v, 0) / values.length;

/**
 * The hint for a run whose GPUs sit idle most of the time, or null. Only heartbeats that saw
 * training steps count when the trainer reports them (set-up, dataset download, validation and
 * uploads leave GPUs idle for good reasons); a trainer that reports no steps is judged on all.
 */
export function gpuHint(samples: SystemSample[]): GpuHint | null {
  const withGpus = samples.filter((sample) => (sample.system.gpus ?? []).length > 0);
  const stepped = withGpus.filter((sample) => typeof sample.system.samples_per_s === "number");
  const recent = (stepped.length > 0 ? stepped : withGpus).slice(-HINT_WINDOW);
  if (recent.length < HINT_MIN_SAMPLES) return null;
  const utilization = mean(recent.flatMap((sample) => (sample.system.gpus ?? []).map((g) => g.utilization_ratio)));
  if (utilization >= IDLE_GPU_RATIO) return null;
  const waits = recent.map((s) => s.system.data_wait_ratio).filter((w): w is number => typeof w === "number");
  const wait = waits.length > 0 ? mean(waits) : null;
  const utilizationPercent = Math.round(100 * utilization);
  const dataBound = wait !== null && wait >= DATA_BOUND_RATIO;
  const message = dataBound
    ? `GPU utilisation ${utilizationPercent} %: the data loader is the bottleneck ` +
      `(the steps wait for data ${Math.round(100 * wait)} % of the time); more data loader ` +
      "workers, or smaller or cached images, would help."
    : `GPU utilisation ${utilizationPercent} %: the GPUs sit idle most of the time` +
      (wait === null ? "" : `, yet the steps wait for data only ${Math.round(100 * wait)} % of the time`) +
      ": a larger batch would use them better, or the time goes to CPU work in each step.";
  return { utilizationPercent, dataBound, message };
}
