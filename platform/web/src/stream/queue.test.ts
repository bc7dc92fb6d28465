import { describe, expect, it } from "vitest";
import type { JobEvent, QueueStatus } from "../api/types";
import { queuePlace, queueSummary } from "./queue";
import { applyEvents, emptyView } from "./reducer";

let seq = 0;
function event(type: string, data: Record<string, unknown>, message = ""): JobEvent {
  seq += 1;
  return { seq, job_id: "job_1", type, source: "api", message, data, created_at: "2026-12-07T06:00:00Z" };
}
const state = (to: string) => event("state", { to, reason: null });
const queued = (position: number, reason: string, gpusAhead = 0) =>
  event("queue", { position, gpus_ahead: gpusAhead, hold: "capacity", reason }, reason);
const read = (overrides: Partial<QueueStatus> = {}): QueueStatus => ({
  position: 2,
  gpus_ahead: 0,
  hold: "capacity",
  reason: "waiting for a CPU slot: 0 of 1 free, 1 run ahead in the queue",
  estimated_start: null,
  ...overrides,
});
const NOW = new Date("2026-12-07T06:00:00Z");

describe("queue events in the job view", () => {
  it("keeps the newest place while QUEUED, in the timeline too, and forgets it once the job leaves the queue", () => {
    seq = 0;
    let view = applyEvents(emptyView, [state("VALIDATING"), state("QUEUED"), queued(2, "2 ahead"), queued(1, "1 ahead")]);
    expect(view.queue).toEqual({ position: 1, gpusAhead: 0, hold: "capacity", reason: "1 ahead" });
    expect(view.timeline.filter((t) => t.type === "queue").map((t) => t.message)).toEqual(["2 ahead", "1 ahead"]);
    view = applyEvents(view, [state("STARTING")]);
    expect(view.queue).toBeNull();
  });

  it("ignores a queue event without a place", () => {
    seq = 0;
    const view = applyEvents(emptyView, [state("QUEUED"), queued(1, "first"), event("queue", { reason: "garbled" })]);
    expect(view.queue?.reason).toBe("first");
    expect(queuePlace({ position: "2", reason: "x" })).toBeNull();
  });
});

describe("queueSummary (the Queued panel)", () => {
  it("shows the read's place, reason and estimated start before any queue event", () => {
    const summary = queueSummary(null, read({ estimated_start: "2026-12-07T06:03:20Z" }), NOW);
    expect(summary).toEqual({
      place: "#2",
      reason: "waiting for a CPU slot: 0 of 1 free, 1 run ahead in the queue",
      gpusAhead: 0,
      start: "in about 3m 20s",
    });
  });

  it("lets the stream's newest place win, keeping the read's estimated start", () => {
    const summary = queueSummary(
      { position: 1, gpusAhead: 2, hold: "capacity", reason: "waiting for 2 GPUs: 0 of 4 free" },
      read({ estimated_start: "2026-12-07T05:59:00Z" }),
      NOW,
    );
    expect(summary).toEqual({ place: "#1", reason: "waiting for 2 GPUs: 0 of 4 free", gpusAhead: 2, start: "any moment now" });
  });

  it("says next for a job nothing holds any more, unknown without an estimate, nothing without a place", () => {
    expect(queueSummary(null, read({ position: 0, hold: "", reason: "it fits now" }), NOW)).toMatchObject({
      place: "next",
      start: "unknown",
    });
    expect(queueSummary(null, null, NOW)).toBeNull();
  });

  it("says the place is unknown when Kueue holds the job without saying where", () => {
    const kueue = read({ position: 0, gpus_ahead: 0, hold: "kueue", reason: "Kueue, LocalQueue q: waiting for quota" });
    expect(queueSummary(null, kueue, NOW)).toMatchObject({ place: "(place unknown)", start: "unknown" });
  });
});
