// Creating a project (POST /v1/projects), without React: who is offered the form, what it
// accepts, and what a refusal says. The backend decides (only a platform admin may create, the
// slug is unique); this only spares the user a round trip and a form that would answer 403.
//
// rules.json mirrors trainyard/auth/projects.py (SLUG_PATTERN) and ProjectCreate's bounds:
// platform/backend/tests/e2e/test_web_identity_e2e.py compares the two.
import { ApiError } from "../api/client";
import type { Me } from "../api/types";
import rules from "./rules.json";

const SLUG = new RegExp(rules.slug_pattern);
// A name people read: no control characters (the backend's PRINTABLE).
const CONTROL = /[\x00-\x1f\x7f]/;

/** Whether the user is offered "New project": platform admins only (the backend refuses
 * everyone else with 403). */
export function mayCreateProjects(me: Pick<Me, "user">): boolean {
  return me.user.platform_admin === true;
}

export interface NewProjectErrors {
  slug?: string;
  name?: string;
}

/** What is wrong with the form, by field; {} when it may be sent. */
export function checkNewProject(slug: string, name: string): NewProjectErrors {
  const errors: NewProjectErrors = {};
  if (!SLUG.test(slug))
    errors.slug = "1 to 63 characters: lower-case letters, digits and hyphens, starting with a letter or digit";
  const trimmed = name.trim();
  if (!trimmed) errors.name = "a name is required";
  else if (trimmed.length > rules.name_max_length) errors.name = `at most ${rules.name_max_length} characters`;
  else if (CONTROL.test(trimmed)) errors.name = "no control characters";
  return errors;
}

/** A slug suggested from the name while the user has not typed one: "Vision team" -> "vision-team". */
export function slugFromName(name: string): string {
  return name
    .toLowerCase()
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "") // the accents NFKD split off: "ü" -> "u"
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+/, "")
    .slice(0, 63)
    .replace(/-+$/, "");
}

/** The sentence shown when the backend refuses: a taken slug said plainly. */
export function createProjectErrorText(error: unknown, slug: string): string {
  if (error instanceof ApiError && error.status === 409)
    return `A project with the slug "${slug}" exists already: choose another slug.`;
  if (error instanceof ApiError && error.status === 403) return "Only platform admins create projects.";
  return (error as Error).message;
}
