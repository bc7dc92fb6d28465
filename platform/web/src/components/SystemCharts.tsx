import { useMemo } from "react";
import { LineChart } from "../charts/LineChart";
import type { SystemSample } from "../charts/system";
import { gpuHint, systemCharts } from "../charts/system";
import { bytes } from "../format";

/** The run's system metrics from its heartbeats: the idle-GPU hint, the latest figures and
 * four charts over time (CPU, memory, GPU utilisation with the data wait, samples/s). */
export function SystemCharts({ samples }: { samples: SystemSample[] }) {
  const charts = useMemo(() => systemCharts(samples), [samples]);
  const hint = useMemo(() => gpuHint(samples), [samples]);
  const latest = samples.at(-1)?.system;
  if (!latest) return null;
  const empty = "Not reported by this trainer.";
  return (
    <section className="system" data-testid="system-metrics">
      <h2>System</h2>
      {hint && (
        <p className="notice" data-testid="gpu-hint" data-data-bound={hint.dataBound}>
          {hint.message}
        </p>
      )}
      <p className="metrics">
        <span>
          CPU <b>{Math.round(latest.cpu_percent)} %</b>
        </span>
        <span>
          RAM <b>{bytes(latest.ram_bytes)}</b>
        </span>
        {typeof latest.samples_per_s === "number" && (
          <span>
            samples/s <b>{latest.samples_per_s.toFixed(1)}</b>
          </span>
        )}
        {(latest.gpus ?? []).map((gpu) => (
          <span key={gpu.index}>
            GPU {gpu.index} <b>{Math.round(100 * gpu.utilization_ratio)} %</b> · {bytes(gpu.memory_used_bytes)} of{" "}
            {bytes(gpu.memory_total_bytes)}
          </span>
        ))}
      </p>
      <div className="charts">
        <LineChart data={charts.cpu} title="CPU" testId="cpu-chart" x="time" empty={empty} />
        <LineChart data={charts.memory} title="Memory" testId="memory-chart" x="time" empty={empty} />
        <LineChart data={charts.busy} title="GPU utilisation and data wait" testId="gpu-chart" x="time" empty="No GPU." />
        <LineChart data={charts.throughput} title="Throughput" testId="throughput-chart" x="time" empty={empty} />
      </div>
    </section>
  );
}
