import { useEffect, useRef } from "react";
import uPlot from "uplot";
import type { ChartData } from "./series";

const COLORS = ["#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#bc4c00", "#0969da"];

/** A uPlot line chart of `data`, resized with its container; rebuilt when the series change.
 * `x`: the first column holds epochs (default) or times in seconds since the epoch. */
export function LineChart({
  data,
  title,
  testId,
  x = "epoch",
  empty = "No epoch finished yet.",
}: {
  data: ChartData;
  title: string;
  testId: string;
  x?: "epoch" | "time";
  empty?: string;
}) {
  const box = useRef<HTMLDivElement>(null);
  const chart = useRef<uPlot | null>(null);
  const key = data.names.join("|");

  useEffect(() => {
    const element = box.current;
    if (!element) return;
    const options: uPlot.Options = {
      title,
      width: Math.max(element.clientWidth, 240),
      height: 220,
      scales: { x: { time: x === "time" } },
      axes: [{ label: x === "time" ? undefined : "epoch" }, {}],
      series: [{ label: x }, ...data.names.map((name, i) => ({ label: name, stroke: COLORS[i % COLORS.length], width: 2, spanGaps: true }))],
    };
    chart.current = new uPlot(options, data.columns as uPlot.AlignedData, element);
    const resize = new ResizeObserver(() => chart.current?.setSize({ width: Math.max(element.clientWidth, 240), height: 220 }));
    resize.observe(element);
    return () => {
      resize.disconnect();
      chart.current?.destroy();
      chart.current = null;
    };
    // Rebuilt only when the set of series changes; new points go through setData below.
  }, [key, title, x]);

  useEffect(() => {
    chart.current?.setData(data.columns as uPlot.AlignedData);
  }, [data]);

  return (
    <div className="chart" data-testid={testId} data-points={data.columns[0]?.length ?? 0}>
      {data.names.length === 0 && <p className="muted">{empty}</p>}
      <div ref={box} />
    </div>
  );
}
