import { describe, expect, it } from "vitest";
import { backoffMs, CLOSE_DONE, CLOSE_TRY_AGAIN_LATER, CLOSE_UNKNOWN_JOB, shouldReconnect, streamUrl } from "./reconnect";
import { NdjsonSplitter } from "./ndjson";

describe("reconnect", () => {
  it("resumes after the last event seen, on the page's own host", () => {
    expect(streamUrl({ protocol: "http:", host: "127.0.0.1:8000" }, "job_1", 42)).toBe(
      "ws://127.0.0.1:8000/v1/jobs/job_1/stream?after_seq=42",
    );
    expect(streamUrl({ protocol: "https:", host: "yard.example" }, "job_1", 0)).toBe(
      "wss://yard.example/v1/jobs/job_1/stream?after_seq=0",
    );
  });

  it("waits longer after each failed try, up to 10 s", () => {
    expect([0, 1, 2, 10].map(backoffMs)).toEqual([500, 1000, 2000, 10_000]);
  });

  it("reconnects after a drop or a slow-client close, not after the end or for an unknown job", () => {
    expect(shouldReconnect(1006, false)).toBe(true);
    expect(shouldReconnect(CLOSE_TRY_AGAIN_LATER, false)).toBe(true);
    expect(shouldReconnect(CLOSE_DONE, true)).toBe(false);
    expect(shouldReconnect(CLOSE_UNKNOWN_JOB, false)).toBe(false);
  });
});

describe("NdjsonSplitter", () => {
  it("parses lines split anywhere across chunks", () => {
    const splitter = new NdjsonSplitter();
    expect(splitter.push('{"type":"delta","te')).toEqual([]);
    expect(splitter.push('xt":"Here "}\n{"type":"del')).toEqual([{ type: "delta", text: "Here " }]);
    expect(splitter.push('ta","text":"is"}\n\n')).toEqual([{ type: "delta", text: "is" }]);
    expect(splitter.push('{"type":"reply"}')).toEqual([]);
    expect(splitter.end()).toEqual([{ type: "reply" }]);
  });
});
