import { describe, expect, it } from "vitest";
import { can, ROLES, type Action, type Role } from "./roles";

const ACTIONS: Action[] = ["read", "submit", "cancel", "write_datasets", "manage"];

function allowed(role: Role | null): Action[] {
  return ACTIONS.filter((action) => can(role, action));
}

describe("can", () => {
  it("lets a viewer read only", () => {
    expect(allowed("viewer")).toEqual(["read"]);
  });

  it("lets a member submit, cancel and write datasets, not manage", () => {
    expect(allowed("member")).toEqual(["read", "submit", "cancel", "write_datasets"]);
  });

  it("lets an admin do everything", () => {
    expect(allowed("admin")).toEqual(ACTIONS);
  });

  it("lets nobody without a role (no project) do anything", () => {
    expect(allowed(null)).toEqual([]);
    expect(can(undefined, "read")).toBe(false);
  });

  it("refuses a role it does not know rather than guessing", () => {
    expect(can("owner" as Role, "read")).toBe(false);
  });

  it("orders the roles weakest first, as the backend's Role", () => {
    expect(ROLES).toEqual(["viewer", "member", "admin"]);
  });
});
