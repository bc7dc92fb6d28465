import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { api, onUnauthorized, PROJECT_HEADER, setRequestProject } from "./client";

// What the page's fetch was called with, per call: the real client code runs, only the
// network is replaced.
let calls: { url: string; init: RequestInit }[] = [];
let status = 200;

beforeEach(() => {
  calls = [];
  status = 200;
  vi.stubGlobal("fetch", async (url: string, init: RequestInit) => {
    calls.push({ url, init });
    return new Response(JSON.stringify({ items: [], detail: "nope" }), {
      status,
      headers: { "Content-Type": "application/json" },
    });
  });
});

afterEach(() => {
  vi.unstubAllGlobals();
  setRequestProject(null);
  onUnauthorized(null);
});

const sentProject = (index: number) => new Headers(calls[index]?.init.headers).get(PROJECT_HEADER);

describe("every call names the chosen project", () => {
  it("on reads, writes, uploads and the chat stream alike", async () => {
    setRequestProject("vision");
    await api.jobs(null);
    await api.cancel("job_1");
    await api.uploadDataset(new FormData());
    await api.chatStream("train it", null);
    await api.createMyKey({ name: "ci", role: "member", expires_in_days: 30 });
    expect(calls.map((c) => c.url)).toEqual(["/v1/jobs?limit=50", "/v1/jobs/job_1/cancel", "/v1/datasets", "/v1/chat/stream", "/v1/me/api-keys"]);
    expect(calls.map((_, i) => sentProject(i))).toEqual(["vision", "vision", "vision", "vision", "vision"]);
  });

  it("keeps the other headers and follows a switch", async () => {
    setRequestProject("vision");
    await api.checkPlan({});
    setRequestProject("default");
    await api.datasets();
    expect(new Headers(calls[0]?.init.headers).get("Content-Type")).toBe("application/json");
    expect([sentProject(0), sentProject(1)]).toEqual(["vision", "default"]);
  });

  it("sends none before a project is chosen (the backend uses the default)", async () => {
    await api.me();
    expect(sentProject(0)).toBeNull();
  });

  it("signs in with the same-origin cookie, never a token of its own", async () => {
    setRequestProject("vision");
    await api.jobs(null);
    expect(calls[0]?.init.credentials).toBe("same-origin");
    expect(new Headers(calls[0]?.init.headers).has("Authorization")).toBe(false);
  });
});

describe("a 401", () => {
  it("tells the app the session ended and fails the call", async () => {
    status = 401;
    let told = 0;
    onUnauthorized(() => (told += 1));
    await expect(api.jobs(null)).rejects.toMatchObject({ status: 401, message: "nope" });
    expect(told).toBe(1);
  });
});
