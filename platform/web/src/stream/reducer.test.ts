import { describe, expect, it } from "vitest";
import type { JobEvent } from "../api/types";
import { applyEvent, applyEvents, emptyView, MAX_LOG_LINES } from "./reducer";

let seq = 0;
function event(type: string, data: Record<string, unknown> = {}, message = ""): JobEvent {
  seq += 1;
  return { seq, job_id: "job_1", type, source: "trainer", message, data, created_at: "2026-11-23T00:00:00Z" };
}
const state = (to: string, reason: string | null = null) => event("state", { to, reason }, `→ ${to}`);
const beat = (epoch: number, metrics: Record<string, number | null> = {}) =>
  event("heartbeat", { epoch, epochs: 3, metrics, elapsed_s: epoch * 10, eta_s: (3 - epoch) * 10 });

describe("applyEvent", () => {
  it("folds a run from start to success", () => {
    seq = 0;
    const view = applyEvents(emptyView, [
      state("VALIDATING"),
      state("RUNNING"),
      beat(1, { "train/box_loss": 2 }),
      beat(2, { "train/box_loss": 1.5 }),
      state("SUCCEEDED"),
    ]);
    expect(view.state).toBe("SUCCEEDED");
    expect(view.epoch).toBe(3);
    expect(view.etaS).toBe(0);
    expect(view.points.map((p) => p.epoch)).toEqual([1, 2]);
    expect(view.timeline.map((t) => t.type)).toEqual(["state", "state", "state"]);
    expect(view.timeline.at(-1)?.tone).toBe("success");
    expect(view.lastSeq).toBe(5);
    expect(view.gaps).toBe(0);
  });

  it("ignores an event it already applied and one older than the last", () => {
    seq = 0;
    const first = beat(1, { loss: 1 });
    const second = beat(2, { loss: 0.5 });
    const once = applyEvents(emptyView, [first, second]);
    const again = applyEvents(once, [first, second]);
    expect(again).toBe(once);
  });

  it("never moves progress back for a late heartbeat", () => {
    seq = 0;
    const view = applyEvents(emptyView, [beat(2, { loss: 1 }), beat(1, { loss: 9 })]);
    expect(view.epoch).toBe(2);
    expect(view.points).toEqual([{ epoch: 2, metrics: { loss: 1 } }]);
  });

  it("keeps every heartbeat's system metrics, late ones and keep-alives included", () => {
    seq = 0;
    const system = (cpu: number) => ({ cpu_percent: cpu, ram_bytes: 1024, gpus: [] });
    const view = applyEvents(emptyView, [
      event("heartbeat", { epoch: 2, epochs: 3, metrics: {}, system: system(100) }),
      event("heartbeat", { epoch: 1, epochs: 3, metrics: {}, system: system(50) }),
      beat(2), // a trainer without system metrics
    ]);
    expect(view.system.map((s) => s.system.cpu_percent)).toEqual([100, 50]);
    expect(view.epoch).toBe(2);
  });

  it("counts a gap in seq (the stream must never make one)", () => {
    seq = 0;
    const view = applyEvent(applyEvent(emptyView, state("RUNNING")), { ...beat(1), seq: 5 });
    expect(view.gaps).toBe(1);
  });

  it("shows why a job waits until it runs, and a failure's reason", () => {
    seq = 0;
    let view = applyEvent(emptyView, event("attempt_pending", {}, "attempt 1 is waiting to run: Unschedulable"));
    expect(view.waiting).toContain("Unschedulable");
    expect(view.timeline[0]?.tone).toBe("warning");
    view = applyEvents(view, [state("RUNNING"), state("FAILED", "trainer exited with code 1")]);
    expect(view.waiting).toBeNull();
    expect(view.reason).toBe("trainer exited with code 1");
    expect(view.timeline.at(-1)?.tone).toBe("error");
  });

  it("keeps the newest log lines only", () => {
    seq = 0;
    const lines = Array.from({ length: MAX_LOG_LINES + 50 }, (_, i) => `line ${i}`);
    const view = applyEvents(emptyView, [event("log", { lines: lines.slice(0, 100) }), event("log", { lines: lines.slice(100) })]);
    expect(view.log).toHaveLength(MAX_LOG_LINES);
    expect(view.log.at(-1)).toBe(`line ${MAX_LOG_LINES + 49}`);
    expect(view.timeline).toHaveLength(0);
  });
});
