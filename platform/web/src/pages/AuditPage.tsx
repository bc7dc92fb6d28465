import { useEffect, useState } from "react";
import { api } from "../api/client";
import type { AuditEvent, AuditPage as Page } from "../api/types";
import { useCan, useIdentity } from "../auth/identity";

const PAGE = 50;

/** Who did what, when and from where: the project's trail (its admins) or every project's
 * (platform admins, sign-in failures included). */
export function AuditPage() {
  const { me, project } = useIdentity();
  const projectAdmin = useCan("manage");
  const platformAdmin = me.user.platform_admin;
  const [everything, setEverything] = useState(!projectAdmin && platformAdmin);
  const [offset, setOffset] = useState(0);
  const [page, setPage] = useState<Page | null>(null);
  const [names, setNames] = useState<Record<string, string>>({});
  const [error, setError] = useState<string | null>(null);
  const slug = project?.slug;

  useEffect(() => {
    if (!slug || !projectAdmin) return;
    // Who is who, for the "who" column: the project's members by id.
    api.members(slug).then(
      (members) => setNames(Object.fromEntries(members.items.map((m) => [m.user_id, m.email ?? m.name ?? m.user_id]))),
      () => undefined,
    );
  }, [slug, projectAdmin]);

  useEffect(() => {
    setError(null);
    const load = everything ? api.allAudit(PAGE, offset) : slug ? api.projectAudit(slug, PAGE, offset) : null;
    load?.then(setPage, (e: Error) => setError(e.message));
  }, [everything, offset, slug]);

  if (!projectAdmin && !platformAdmin) {
    return (
      <section>
        <h1>Audit trail</h1>
        <p className="muted">Only the project's admins see its audit trail.</p>
      </section>
    );
  }
  const projects = Object.fromEntries(me.projects.map((p) => [p.id, p.slug]));
  const who = (event: AuditEvent) =>
    event.user_id === me.user.id ? "you" : event.user_id ? (names[event.user_id] ?? event.user_id) : "nobody signed in";
  return (
    <section>
      <h1>Audit trail</h1>
      <div className="filters">
        {platformAdmin && (
          <select
            data-testid="audit-scope"
            value={everything ? "all" : "project"}
            onChange={(e) => {
              setOffset(0);
              setEverything(e.target.value === "all");
            }}
          >
            {projectAdmin && <option value="project">{project?.name}</option>}
            <option value="all">every project</option>
          </select>
        )}
        <button className="secondary" disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - PAGE))}>
          Newer
        </button>
        <button
          className="secondary"
          disabled={!page || offset + PAGE >= page.total}
          onClick={() => setOffset(offset + PAGE)}
        >
          Older
        </button>
        {page && (
          <span className="muted">
            {page.total === 0 ? 0 : offset + 1}–{Math.min(offset + PAGE, page.total)} of {page.total}
          </span>
        )}
      </div>
      {error && <p className="error">{error}</p>}
      <table className="list" data-testid="audit">
        <thead>
          <tr>
            <th>When</th>
            <th>Who</th>
            <th>What</th>
            <th>Where</th>
            {everything && <th>Project</th>}
          </tr>
        </thead>
        <tbody>
          {(page?.items ?? []).map((event) => (
            <tr key={event.id} data-testid="audit-row" data-action={event.action}>
              <td>{new Date(event.at).toLocaleString()}</td>
              <td>
                {who(event)} <span className="muted">{event.credential}</span>
              </td>
              <td>
                <b>{event.action}</b> {event.target}
                {Object.keys(event.detail).length > 0 && <span className="muted"> {JSON.stringify(event.detail)}</span>}
              </td>
              <td>{event.client}</td>
              {everything && <td>{event.project_id ? (projects[event.project_id] ?? event.project_id) : "–"}</td>}
            </tr>
          ))}
        </tbody>
      </table>
      {page?.items.length === 0 && <p className="muted">Nothing recorded yet.</p>}
    </section>
  );
}
