// Signing in and choosing a project, without React: the pieces the app shell and its tests
// share. Only a project's slug is remembered in the browser, never a credential (the
// session is an HttpOnly cookie the backend sets).
import type { Me, Project } from "../api/types";

const PROJECT_KEY = "trainyard.project";

/** Where the "Sign in" button goes: the backend's sign-in, back to this page afterwards. */
export function loginUrl(location: { pathname: string; search: string; hash?: string }): string {
  const next = `${location.pathname}${location.search}${location.hash ?? ""}` || "/";
  return `/auth/login?next=${encodeURIComponent(next)}`;
}

/** How this request signed in, in words (the backend's `credential`). */
export function credentialLabel(credential: string): string {
  if (credential === "local") return "local mode, no sign-in";
  if (credential === "session") return "signed in with single sign-on";
  if (credential === "oidc") return "an OIDC access token";
  if (credential.startsWith("api_key:")) return `API key tyk_${credential.slice("api_key:".length)}_…`;
  return credential;
}

/** Whether the user can sign out here (local mode has nobody to sign out). */
export function canSignOut(credential: string): boolean {
  return credential === "session" || credential === "oidc";
}

/** The project to act in: the remembered one while the user still has it, else their
 * default, else their first. */
export function chooseProject(me: Pick<Me, "projects" | "default_project">, remembered: string | null): Project | null {
  const find = (slug: string | null) => (slug ? me.projects.find((p) => p.slug === slug) : undefined);
  return find(remembered) ?? find(me.default_project) ?? me.projects[0] ?? null;
}

function storage(): Storage | null {
  try {
    return typeof window === "undefined" ? null : window.localStorage;
  } catch {
    return null; // storage disabled: the choice lasts until the page reloads
  }
}

export function rememberedProject(): string | null {
  return storage()?.getItem(PROJECT_KEY) ?? null;
}

export function rememberProject(slug: string): void {
  storage()?.setItem(PROJECT_KEY, slug);
}
