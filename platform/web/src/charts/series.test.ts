import { describe, expect, it } from "vitest";
import { lossData, metricData } from "./series";

const points = [
  { epoch: 1, metrics: { "train/box_loss": 2, "val/box_loss": 2.5, "metrics/mAP50(B)": 0.1, "lr/pg0": 0.01 } },
  { epoch: 2, metrics: { "train/box_loss": 1.5, "val/box_loss": null, "metrics/mAP50(B)": 0.3, "lr/pg0": 0.009 } },
];

describe("chart data", () => {
  it("puts losses in one chart and the other metrics in another, learning rates in neither", () => {
    expect(lossData(points).names).toEqual(["train/box_loss", "val/box_loss"]);
    expect(metricData(points).names).toEqual(["metrics/mAP50(B)"]);
  });

  it("uses epochs as x and null for a metric an epoch did not report", () => {
    expect(lossData(points).columns).toEqual([
      [1, 2],
      [2, 1.5],
      [2.5, null],
    ]);
  });

  it("is empty before the first epoch", () => {
    expect(lossData([])).toEqual({ names: [], columns: [[]] });
  });
});
