import { describe, expect, it } from "vitest";
import { draftText, type ChatDraft } from "./chatLines";

const empty: ChatDraft = { request: {}, questions: [], based_on_job: null, note: null };

describe("draftText", () => {
  it("says what the model has read so far, and nothing it has not", () => {
    expect(draftText(empty)).toBe("Reading…");
    expect(draftText({ ...empty, request: { model: "yolo11n", epochs: 7, gpus: null } })).toBe(
      "Reading: yolo11n, 7 epochs…",
    );
    expect(
      draftText({ ...empty, request: { model: "yolo11n.pt", dataset: "shapes", imgsz: 320, batch: 8, gpus: 0 } }),
    ).toBe("Reading: yolo11n.pt, on shapes, 320 px, batch 8, the CPU…");
    expect(draftText({ ...empty, request: { gpus: 2 }, note: "Like job_1, but longer." })).toBe(
      "Like job_1, but longer.\nReading: 2 GPUs…",
    );
  });
});
