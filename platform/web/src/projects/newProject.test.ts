import { describe, expect, it } from "vitest";
import { ApiError } from "../api/client";
import { checkNewProject, createProjectErrorText, mayCreateProjects, slugFromName } from "./newProject";

const user = (platform_admin: boolean) => ({ user: { id: "u_1", email: null, name: null, platform_admin } });

describe("who is offered a new project", () => {
  it("is a platform admin, and nobody else (a project admin neither)", () => {
    expect(mayCreateProjects(user(true))).toBe(true);
    expect(mayCreateProjects(user(false))).toBe(false);
  });
});

describe("checkNewProject", () => {
  it("accepts the backend's slugs", () => {
    expect(checkNewProject("vision-team", "Vision team")).toEqual({});
    expect(checkNewProject("a", "A")).toEqual({});
    expect(checkNewProject("0" + "x".repeat(62), "Long")).toEqual({});
  });

  it("refuses a slug the backend would refuse", () => {
    for (const slug of ["", "-vision", "Vision", "vision team", "vision_team", "é", "0" + "x".repeat(63)]) {
      expect(checkNewProject(slug, "Vision").slug, slug).toBeDefined();
    }
  });

  it("wants a printable name of at most 200 characters", () => {
    expect(checkNewProject("vision", "  ").name).toBeDefined();
    expect(checkNewProject("vision", "x".repeat(201)).name).toBeDefined();
    expect(checkNewProject("vision", "a\u0007b").name).toBeDefined();
    expect(checkNewProject("vision", "x".repeat(200))).toEqual({});
  });
});

describe("slugFromName", () => {
  it("suggests a slug the form accepts", () => {
    expect(slugFromName("Vision team")).toBe("vision-team");
    expect(slugFromName("  Ünïcode & more!  ")).toBe("unicode-more");
    const long = slugFromName("word ".repeat(40));
    expect(checkNewProject(long, "n").slug).toBeUndefined();
  });
});

describe("createProjectErrorText", () => {
  it("says plainly that a slug is taken", () => {
    expect(createProjectErrorText(new ApiError(409, "a project 'x' exists already"), "vision")).toMatch(
      /"vision" exists already/,
    );
    expect(createProjectErrorText(new ApiError(500, "request failed (500)"), "vision")).toBe("request failed (500)");
  });
});
