import { describe, expect, it } from "vitest";
import { canSignOut, chooseProject, credentialLabel, loginUrl } from "./session";

const project = (slug: string, role: "viewer" | "member" | "admin" = "member") => ({ id: `p_${slug}`, slug, name: slug, role });
const me = { projects: [project("default", "admin"), project("vision", "viewer")], default_project: "default" };

describe("loginUrl", () => {
  it("comes back to the page the user was on, query included", () => {
    expect(loginUrl({ pathname: "/jobs/job_1", search: "?x=1&y=2", hash: "" })).toBe(
      "/auth/login?next=%2Fjobs%2Fjob_1%3Fx%3D1%26y%3D2",
    );
    expect(loginUrl({ pathname: "/", search: "" })).toBe("/auth/login?next=%2F");
  });
});

describe("chooseProject", () => {
  it("keeps the remembered project while the user still has it", () => {
    expect(chooseProject(me, "vision")?.slug).toBe("vision");
  });

  it("falls back to the default when the remembered one is gone, then to the first", () => {
    expect(chooseProject(me, "removed")?.slug).toBe("default");
    expect(chooseProject({ ...me, default_project: null }, null)?.slug).toBe("default");
    expect(chooseProject({ projects: [], default_project: null }, "vision")).toBeNull();
  });
});

describe("the user menu", () => {
  it("offers no sign-out in local mode nor to an API key", () => {
    expect(canSignOut("local")).toBe(false);
    expect(canSignOut("api_key:abc123")).toBe(false);
    expect(canSignOut("session")).toBe(true);
  });

  it("says how the user signed in", () => {
    expect(credentialLabel("local")).toMatch(/local/);
    expect(credentialLabel("api_key:abc123")).toBe("API key tyk_abc123_…");
  });
});
