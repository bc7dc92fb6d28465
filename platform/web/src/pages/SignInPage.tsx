import { loginUrl } from "../auth/session";

/** Shown when the backend answers 401: sign-in is a full-page trip to the backend (and the
 * identity provider), which sets the session cookie and comes back here. */
export function SignInPage() {
  return (
    <div className="app sign-in" data-testid="sign-in-page">
      <h1>Trainyard</h1>
      <p>Sign in to see your projects, runs and datasets.</p>
      <button data-testid="sign-in" onClick={() => window.location.assign(loginUrl(window.location))}>
        Sign in
      </button>
    </div>
  );
}
