// Who may do what, for showing and hiding controls. The backend decides (every route checks
// its own action); this only keeps a viewer from meeting buttons that would answer 403.
//
// The table mirrors trainyard/auth/roles.py (Role, Action, WEAKEST_ROLE): it lives in
// roles.json so that platform/backend/tests/e2e/test_web_identity_e2e.py can compare the two
// and fail when one changes without the other.
import type { components } from "../api/openapi";
import table from "./roles.json";

/** A member's role in one project (generated from the backend's `Role`). */
export type Role = components["schemas"]["Role"];
export type Action = keyof typeof table.weakest_role;

/** Roles, weakest first. */
export const ROLES: readonly Role[] = table.roles as Role[];
const WEAKEST_ROLE = table.weakest_role as Record<Action, Role>;

function rank(role: Role): number {
  return ROLES.indexOf(role);
}

/** Whether `role` may perform `action`; no role (no project) may do nothing. */
export function can(role: Role | null | undefined, action: Action): boolean {
  if (!role) return false;
  const known = rank(role);
  return known >= 0 && known >= rank(WEAKEST_ROLE[action]);
}
