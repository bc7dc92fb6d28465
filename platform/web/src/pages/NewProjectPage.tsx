import { useState } from "react";
import { useNavigate } from "react-router-dom";
import { api } from "../api/client";
import { useIdentity } from "../auth/identity";
import { checkNewProject, createProjectErrorText, mayCreateProjects, slugFromName } from "../projects/newProject";

/** A platform admin makes a project (and administers it); the app then acts in it. */
export function NewProjectPage() {
  const { me, refresh } = useIdentity();
  const navigate = useNavigate();
  const [name, setName] = useState("");
  const [slug, setSlug] = useState("");
  const [slugTyped, setSlugTyped] = useState(false);
  const [touched, setTouched] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  if (!mayCreateProjects(me)) return <p className="muted">Only platform admins create projects.</p>;

  const shownSlug = slugTyped ? slug : slugFromName(name);
  const problems = checkNewProject(shownSlug, name);
  const valid = Object.keys(problems).length === 0;

  const create = async () => {
    setTouched(true);
    setError(null);
    if (!valid) return;
    setBusy(true);
    try {
      const created = await api.createProject(shownSlug, name.trim());
      // Select it, then its members page: the next thing an admin of a new project does.
      await refresh(created.slug);
      navigate("/members");
    } catch (e) {
      setError(createProjectErrorText(e, shownSlug));
      setBusy(false);
    }
  };

  return (
    <section>
      <h1>New project</h1>
      <form
        className="new-project"
        data-testid="new-project-form"
        noValidate
        onSubmit={(e) => {
          e.preventDefault();
          void create();
        }}
      >
        <label>
          Name
          <input data-testid="new-project-name" value={name} maxLength={200} onChange={(e) => setName(e.target.value)} />
        </label>
        {touched && problems.name && (
          <span className="error" data-testid="new-project-name-error">
            Name: {problems.name}
          </span>
        )}
        <label>
          Slug
          <input
            data-testid="new-project-slug"
            value={shownSlug}
            maxLength={63}
            spellCheck={false}
            autoCapitalize="off"
            onChange={(e) => {
              setSlugTyped(true);
              setSlug(e.target.value);
            }}
          />
        </label>
        <span className="muted">Names the project in URLs, the CLI and the Trainyard-Project header; it cannot change.</span>
        {(touched || slugTyped) && problems.slug && (
          <span className="error" data-testid="new-project-slug-error">
            Slug: {problems.slug}
          </span>
        )}
        <button data-testid="new-project-create" type="submit" disabled={busy}>
          {busy ? "Creating…" : "Create project"}
        </button>
      </form>
      {error && (
        <p className="error" data-testid="new-project-error">
          {error}
        </p>
      )}
    </section>
  );
}
