import { useEffect, useState } from "react";
import { api } from "../api/client";
import type { ApiKey, ApiKeyCreate, ApiKeyCreated } from "../api/types";
import { useCan, useIdentity } from "../auth/identity";
import type { Role } from "../auth/roles";
import { RoleSelect } from "./MembersPage";

/** API keys for scripts and CI: the project's (its admins) and your own (everyone). */
export function ApiKeysPage() {
  const { project } = useIdentity();
  const admin = useCan("manage");
  const slug = project?.slug;
  return (
    <section>
      <h1>API keys</h1>
      <p className="muted">
        A key acts without a browser: send it as <code>Authorization: Bearer …</code>. Keys expire; revoke one the moment
        it may have leaked.
      </p>
      {admin && slug && (
        <KeySection
          testId="project-keys"
          title={`Keys of ${project.name}`}
          about="They act in this project only, with at most the role they were given."
          list={() => api.projectKeys(slug)}
          create={(body) => api.createProjectKey(slug, body)}
          revoke={(id) => api.revokeProjectKey(slug, id)}
        />
      )}
      <KeySection
        testId="personal-keys"
        title="Your personal keys"
        about="They act as you in each of your projects, never above their role nor yours there."
        list={() => api.myKeys()}
        create={(body) => api.createMyKey(body)}
        revoke={(id) => api.revokeMyKey(id)}
      />
    </section>
  );
}

function keyState(key: ApiKey, now: number): "revoked" | "expired" | "active" {
  if (key.revoked_at) return "revoked";
  if (key.expires_at && Date.parse(key.expires_at) <= now) return "expired";
  return "active";
}

const day = (at: string | null) => (at ? new Date(at).toLocaleDateString() : "–");

function KeySection({
  testId,
  title,
  about,
  list,
  create,
  revoke,
}: {
  testId: string;
  title: string;
  about: string;
  list: () => Promise<{ items: ApiKey[] }>;
  create: (body: ApiKeyCreate) => Promise<ApiKeyCreated>;
  revoke: (id: string) => Promise<ApiKey>;
}) {
  const [keys, setKeys] = useState<ApiKey[]>([]);
  const [created, setCreated] = useState<ApiKeyCreated | null>(null);
  const [copied, setCopied] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [name, setName] = useState("");
  const [role, setRole] = useState<Role>("member");
  const [days, setDays] = useState(90);

  const act = async (change: () => Promise<unknown>) => {
    setError(null);
    try {
      await change();
      setKeys((await list()).items);
    } catch (e) {
      setError((e as Error).message);
    }
  };
  useEffect(() => {
    void act(async () => undefined);
  }, []); // once: the page is mounted afresh for each project

  const copy = async (key: string) => {
    try {
      await navigator.clipboard.writeText(key);
      setCopied(true);
    } catch {
      setError("the browser refused the clipboard: select the key and copy it by hand");
    }
  };

  const now = Date.now();
  return (
    <div className="key-section" data-testid={testId}>
      <h2>{title}</h2>
      <p className="muted">{about}</p>
      <form
        className="filters"
        data-testid="key-create"
        onSubmit={(e) => {
          e.preventDefault();
          void act(async () => {
            setCopied(false);
            setCreated(await create({ name: name.trim(), role, expires_in_days: days }));
            setName("");
          });
        }}
      >
        <input data-testid="key-name" placeholder="name, e.g. nightly-retrain" value={name} required maxLength={100} onChange={(e) => setName(e.target.value)} />
        <RoleSelect testId="key-role" value={role} onChange={setRole} />
        <label className="inline">
          expires in
          <input type="number" min={1} max={366} value={days} onChange={(e) => setDays(Number(e.target.value))} /> days
        </label>
        <button type="submit">Create key</button>
      </form>
      {created && (
        <div className="new-key notice" data-testid="new-key">
          <p>
            <b>Copy this key now: it is shown this once and cannot be shown again.</b> Keep it in a secret store, never in a
            repository.
          </p>
          <div className="new-key-row">
            <code data-testid="new-key-value">{created.key}</code>
            <button type="button" data-testid="new-key-copy" onClick={() => void copy(created.key)}>
              {copied ? "Copied" : "Copy"}
            </button>
            <button type="button" className="secondary" data-testid="new-key-done" onClick={() => setCreated(null)}>
              Done
            </button>
          </div>
        </div>
      )}
      {error && <p className="error">{error}</p>}
      <table className="list" data-testid="keys">
        <thead>
          <tr>
            <th>Name</th>
            <th>Key</th>
            <th>Role</th>
            <th>Created</th>
            <th>Expires</th>
            <th>Last used</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {keys.map((key) => {
            const state = keyState(key, now);
            return (
              <tr key={key.id} data-testid="key-row" data-key-id={key.id} data-state={state}>
                <td>{key.name}</td>
                <td>
                  <code>tyk_{key.prefix}_…</code>
                </td>
                <td>{key.role}</td>
                <td>{day(key.created_at)}</td>
                <td>{day(key.expires_at)}</td>
                <td>{day(key.last_used_at)}</td>
                <td>
                  {state === "active" ? (
                    <button className="secondary" data-testid="key-revoke" onClick={() => void act(() => revoke(key.id))}>
                      Revoke
                    </button>
                  ) : (
                    <span className={`badge ${state === "revoked" ? "invalid" : ""}`}>{state}</span>
                  )}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {keys.length === 0 && <p className="muted">No keys yet.</p>}
    </div>
  );
}
