import { describe, expect, it } from "vitest";
import { planShowsPriority, priorityBadge } from "./priority";

describe("priorityBadge", () => {
  it("marks every level but normal, each with its own class", () => {
    expect(priorityBadge("urgent")).toEqual({ label: "urgent priority", className: "badge priority-urgent" });
    expect(priorityBadge("high")).toEqual({ label: "high priority", className: "badge priority-high" });
    expect(priorityBadge("low")).toEqual({ label: "low priority", className: "badge priority-low" });
  });

  it("shows nothing for normal or a priority not given", () => {
    expect(priorityBadge("normal")).toBeNull();
    expect(priorityBadge(null)).toBeNull();
    expect(priorityBadge(undefined)).toBeNull();
  });
});

describe("planShowsPriority", () => {
  it("shows a priority that was asked for, normal too", () => {
    expect(planShowsPriority("high", [])).toBe(true);
    expect(planShowsPriority("normal", [])).toBe(true);
  });

  it("hides an unset priority unless the plan asks about it", () => {
    expect(planShowsPriority(null, [])).toBe(false);
    expect(planShowsPriority(undefined, [{ field: "gpus" }])).toBe(false);
    expect(planShowsPriority(null, [{ field: "priority" }])).toBe(true);
  });
});
