import { useRef, useState } from "react";
import { Link } from "react-router-dom";
import { api } from "../api/client";
import { useIdentity } from "../auth/identity";
import { canSignOut, credentialLabel } from "../auth/session";
import { mayCreateProjects } from "../projects/newProject";

/** Who is signed in and how; a new project (platform admins); sign out (not in local mode,
 * where nobody signed in). */
export function UserMenu() {
  const { me } = useIdentity();
  const [error, setError] = useState<string | null>(null);
  const menu = useRef<HTMLDetailsElement>(null);
  const user = me.user;

  const signOut = async () => {
    setError(null);
    try {
      const answer = await api.logout();
      window.location.assign(answer.logout_url || "/");
    } catch (e) {
      setError((e as Error).message);
    }
  };

  return (
    <details className="user-menu" ref={menu}>
      <summary data-testid="user-menu">{user.name ?? user.email ?? user.id}</summary>
      <div className="user-menu-panel" data-testid="user-menu-panel">
        <b data-testid="user-name">{user.name ?? user.id}</b>
        {user.email && <span data-testid="user-email">{user.email}</span>}
        <span className="muted" data-testid="user-credential">
          {credentialLabel(me.credential)}
        </span>
        {user.platform_admin && <span className="badge">platform admin</span>}
        {mayCreateProjects(me) && (
          // Closes the menu: the page it opens is where the user looks next.
          <Link to="/projects/new" data-testid="new-project-link" onClick={() => menu.current?.removeAttribute("open")}>
            New project…
          </Link>
        )}
        {canSignOut(me.credential) && (
          <button data-testid="sign-out" onClick={() => void signOut()}>
            Sign out
          </button>
        )}
        {error && <span className="error">{error}</span>}
      </div>
    </details>
  );
}
