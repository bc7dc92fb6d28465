// Who is using the app and in which project, for every page: loaded once from /v1/me.
import { createContext, useContext } from "react";
import type { Me, Project } from "../api/types";
import { can, type Action } from "./roles";

export interface Identity {
  me: Me;
  /** The project every call acts in (null: the user belongs to none). */
  project: Project | null;
  switchProject: (slug: string) => void;
  /** /v1/me again (after creating a project, changing one's own role); `select`: act in that
   * project from now on (one just created). */
  refresh: (select?: string) => Promise<void>;
}

export const IdentityContext = createContext<Identity | null>(null);

export function useIdentity(): Identity {
  const identity = useContext(IdentityContext);
  if (!identity) throw new Error("useIdentity outside the signed-in app");
  return identity;
}

/** Whether the user's role in the chosen project allows `action` (see roles.ts). */
export function useCan(action: Action): boolean {
  return can(useIdentity().project?.role, action);
}
