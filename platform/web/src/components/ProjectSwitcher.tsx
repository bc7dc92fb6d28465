import { useIdentity } from "../auth/identity";

/** The project every page acts in, with the user's role in each. */
export function ProjectSwitcher() {
  const { me, project, switchProject } = useIdentity();
  if (me.projects.length === 0) return null;
  return (
    <label className="project-switcher">
      <span className="muted">Project</span>
      <select data-testid="project-switcher" value={project?.slug ?? ""} onChange={(e) => switchProject(e.target.value)}>
        {me.projects.map((p) => (
          <option key={p.slug} value={p.slug}>
            {p.name} ({p.role})
          </option>
        ))}
      </select>
    </label>
  );
}
