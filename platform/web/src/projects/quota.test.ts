import { describe, expect, it } from "vitest";
import type { QuotaRead } from "../api/types";
import { quotaBody, quotaForm, quotaRows } from "./quota";

const read = (overrides: Partial<QuotaRead> = {}): QuotaRead => ({
  project: "default",
  quota: { gpus: 2, runs: null, gpu_hours_per_month: 10, max_priority: "high" },
  usage: { gpus: 2, runs: 3, gpu_hours_this_month: 4.256 },
  remaining: { gpus: 0, runs: null, gpu_hours_this_month: 5.744 },
  budget_exhausted: false,
  ...overrides,
});

describe("quotaRows", () => {
  it("shows usage against each limit and marks a full one", () => {
    expect(quotaRows(read())).toEqual([
      { label: "GPUs", used: "2", limit: "2", left: "0", full: true },
      { label: "Runs", used: "3", limit: "no limit", left: "no limit", full: false },
      { label: "GPU-hours this month", used: "4.26", limit: "10", left: "5.74", full: false },
    ]);
  });

  it("marks the budget full once the month's GPU-hours are used up", () => {
    expect(quotaRows(read({ budget_exhausted: true })).at(-1)).toHaveProperty("full", true);
  });
});

describe("quotaBody", () => {
  it("round-trips the current quota, empty boxes lifting a limit", () => {
    const form = quotaForm(read().quota);
    expect(form).toEqual({ gpus: "2", runs: "", gpuHours: "10", maxPriority: "high" });
    expect(quotaBody(form)).toEqual({ body: read().quota });
    expect(quotaBody({ ...form, gpus: " ", maxPriority: "normal" })).toEqual({
      body: { ...read().quota, gpus: null, max_priority: "normal" },
    });
  });

  it("refuses what the backend would refuse, naming the field", () => {
    const form = quotaForm(read().quota);
    for (const gpus of ["-1", "1.5", "two", "1025"]) {
      expect(quotaBody({ ...form, gpus }), gpus).toHaveProperty("errors.gpus");
    }
    expect(quotaBody({ ...form, gpuHours: "0.5" })).toHaveProperty("body.gpu_hours_per_month", 0.5);
    expect(quotaBody({ ...form, gpuHours: "Infinity" })).toHaveProperty("errors.gpuHours");
  });
});
