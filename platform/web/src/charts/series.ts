// Chart data from a job's epoch points: losses in one chart, the other metrics in another,
// as uPlot's column arrays (x = epochs; a metric missing at an epoch is null, a gap).
import type { EpochPoint } from "../stream/reducer";

export interface ChartData {
  names: string[];
  /** [epochs, series 1, series 2, ...] */
  columns: (number | null)[][];
}

export function isLoss(name: string): boolean {
  return name.toLowerCase().includes("loss");
}

function seriesNames(points: EpochPoint[], keep: (name: string) => boolean): string[] {
  const names = new Set<string>();
  for (const point of points) {
    for (const name of Object.keys(point.metrics)) if (keep(name)) names.add(name);
  }
  return [...names].sort();
}

export function chartData(points: EpochPoint[], keep: (name: string) => boolean): ChartData {
  const names = seriesNames(points, keep);
  const epochs = points.map((point) => point.epoch);
  const columns: (number | null)[][] = [epochs];
  for (const name of names) {
    columns.push(
      points.map((point) => {
        const value = point.metrics[name];
        return typeof value === "number" && Number.isFinite(value) ? value : null;
      }),
    );
  }
  return { names, columns };
}

export const lossData = (points: EpochPoint[]) => chartData(points, isLoss);
export const metricData = (points: EpochPoint[]) =>
  chartData(points, (name) => !isLoss(name) && !name.startsWith("lr"));
