import { useCallback, useEffect, useMemo, useState } from "react";
import { NavLink, Route, Routes, useLocation, useNavigate } from "react-router-dom";
import { api, ApiError, onUnauthorized, setRequestProject } from "./api/client";
import type { Me, Project } from "./api/types";
import { IdentityContext, type Identity } from "./auth/identity";
import { can } from "./auth/roles";
import { chooseProject, rememberedProject, rememberProject } from "./auth/session";
import { ProjectSwitcher } from "./components/ProjectSwitcher";
import { UserMenu } from "./components/UserMenu";
import { ApiKeysPage } from "./pages/ApiKeysPage";
import { AuditPage } from "./pages/AuditPage";
import { ChatPage } from "./pages/ChatPage";
import { DatasetsPage } from "./pages/DatasetsPage";
import { JobPage } from "./pages/JobPage";
import { JobsPage } from "./pages/JobsPage";
import { MembersPage } from "./pages/MembersPage";
import { NewProjectPage } from "./pages/NewProjectPage";
import { SignInPage } from "./pages/SignInPage";
import { mayCreateProjects } from "./projects/newProject";

type Status = { kind: "loading" } | { kind: "signed-out" } | { kind: "failed"; message: string } | { kind: "ready"; me: Me };

// A page of one object (a job, a conversation) belongs to one project: after a switch, its list.
const OBJECT_PAGES: [RegExp, string][] = [
  [/^\/jobs\/.+/, "/jobs"],
  [/^\/chat\/.+/, "/"],
];

/** The signed-in app: who you are (/v1/me) first, then the pages, in the chosen project. */
export function App() {
  const [status, setStatus] = useState<Status>({ kind: "loading" });
  const [project, setProject] = useState<Project | null>(null);
  const navigate = useNavigate();
  const location = useLocation();

  const load = useCallback(async (select?: string) => {
    try {
      const me = await api.me();
      if (select && me.projects.some((p) => p.slug === select)) rememberProject(select);
      const chosen = chooseProject(me, rememberedProject());
      // Before any page renders: its first call already names the project.
      setRequestProject(chosen?.slug ?? null);
      setProject(chosen);
      setStatus({ kind: "ready", me });
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) setStatus({ kind: "signed-out" });
      else setStatus({ kind: "failed", message: (e as Error).message });
    }
  }, []);

  useEffect(() => {
    onUnauthorized(() => setStatus({ kind: "signed-out" }));
    void load();
    return () => onUnauthorized(null);
  }, [load]);

  const me = status.kind === "ready" ? status.me : null;
  const identity = useMemo<Identity | null>(
    () =>
      me && {
        me,
        project,
        refresh: load,
        switchProject: (slug: string) => {
          const next = me.projects.find((p) => p.slug === slug);
          if (!next) return;
          setRequestProject(next.slug);
          rememberProject(next.slug);
          setProject(next);
          const list = OBJECT_PAGES.find(([pattern]) => pattern.test(location.pathname));
          if (list) navigate(list[1]);
        },
      },
    [me, project, load, location.pathname, navigate],
  );

  if (status.kind === "signed-out") return <SignInPage />;
  if (status.kind === "failed")
    return (
      <div className="app">
        <p className="error">Trainyard did not answer: {status.message}</p>
        <button onClick={() => void load()}>Try again</button>
      </div>
    );
  if (!identity) return <div className="app muted">Loading…</div>;

  const seesAudit = can(project?.role, "manage") || identity.me.user.platform_admin;
  return (
    <IdentityContext.Provider value={identity}>
      <div className="app">
        <header className="nav">
          <span className="brand">Trainyard</span>
          <nav>
            <NavLink to="/" end>
              Chat
            </NavLink>
            <NavLink to="/jobs">Jobs</NavLink>
            <NavLink to="/datasets">Datasets</NavLink>
            <NavLink to="/members">Members</NavLink>
            <NavLink to="/api-keys">API keys</NavLink>
            {seesAudit && <NavLink to="/audit">Audit</NavLink>}
          </nav>
          <div className="who">
            <ProjectSwitcher />
            <UserMenu />
          </div>
        </header>
        <main>
          {!project && (
            <p className="notice" data-testid="no-project">
              {mayCreateProjects(identity.me) ? (
                <>
                  There is no project yet: <NavLink to="/projects/new">create one</NavLink>.
                </>
              ) : (
                <>You are in no project yet: ask a project admin to add you ({identity.me.user.email ?? identity.me.user.id}).</>
              )}
            </p>
          )}
          {/* Keyed by project: a switch mounts every page afresh, so each lists the new project's. */}
          <Routes key={project?.slug ?? ""}>
            {/* One route for "/" and "/chat/<id>": the page stays mounted when a new
                conversation gets its URL. */}
            <Route path="/chat?/:conversationId?" element={<ChatPage />} />
            <Route path="/jobs" element={<JobsPage />} />
            <Route path="/jobs/:jobId" element={<JobPage />} />
            <Route path="/datasets" element={<DatasetsPage />} />
            <Route path="/members" element={<MembersPage />} />
            <Route path="/api-keys" element={<ApiKeysPage />} />
            <Route path="/audit" element={<AuditPage />} />
            <Route path="/projects/new" element={<NewProjectPage />} />
            <Route path="*" element={<p>No such page.</p>} />
          </Routes>
        </main>
      </div>
    </IdentityContext.Provider>
  );
}
