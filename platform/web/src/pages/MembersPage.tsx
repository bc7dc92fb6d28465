import { useEffect, useState } from "react";
import { api } from "../api/client";
import type { Member } from "../api/types";
import { useCan, useIdentity } from "../auth/identity";
import { QuotaPanel } from "../components/QuotaPanel";
import { ROLES, type Role } from "../auth/roles";

/** The project's members and their roles: admins add by email, change roles and remove;
 * everyone else reads the list. */
export function MembersPage() {
  const { me, project, refresh } = useIdentity();
  const admin = useCan("manage");
  const [members, setMembers] = useState<Member[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [email, setEmail] = useState("");
  const [role, setRole] = useState<Role>("member");
  const slug = project?.slug;

  const load = async () => {
    if (!slug) return;
    try {
      setMembers((await api.members(slug)).items);
    } catch (e) {
      setError((e as Error).message);
    }
  };
  useEffect(() => {
    void load();
  }, []); // once: the page is mounted afresh for each project

  const act = async (change: () => Promise<unknown>, self: boolean) => {
    setError(null);
    try {
      await change();
      await load();
      if (self) await refresh(); // one's own role changed: the whole app follows it
    } catch (e) {
      setError((e as Error).message);
    }
  };

  if (!project || !slug) return null;
  return (
    <section>
      <h1>Members of {project.name}</h1>
      {admin && (
        <form
          className="filters"
          data-testid="member-add"
          onSubmit={(e) => {
            e.preventDefault();
            void act(() => api.setMember(slug, { email: email.trim(), role }), false).then(() => setEmail(""));
          }}
        >
          <input
            data-testid="member-email"
            type="email"
            placeholder="email they sign in with"
            value={email}
            required
            onChange={(e) => setEmail(e.target.value)}
          />
          <RoleSelect testId="member-role" value={role} onChange={setRole} />
          <button type="submit">Add</button>
        </form>
      )}
      {error && <p className="error">{error}</p>}
      <table className="list" data-testid="members">
        <thead>
          <tr>
            <th>Member</th>
            <th>Role</th>
            <th>From</th>
            {admin && <th />}
          </tr>
        </thead>
        <tbody>
          {members.map((m) => {
            const self = m.user_id === me.user.id;
            return (
              <tr key={m.user_id} data-testid="member-row" data-user-id={m.user_id}>
                <td>
                  {m.name ?? m.email ?? m.user_id}
                  {m.email && m.name && <span className="muted"> {m.email}</span>}
                  {self && <span className="muted"> (you)</span>}
                </td>
                <td data-testid="member-row-role">
                  {admin ? (
                    <RoleSelect
                      testId="member-row-role-select"
                      value={m.role}
                      onChange={(next) => void act(() => api.setMember(slug, { user_id: m.user_id, role: next }), self)}
                    />
                  ) : (
                    m.role
                  )}
                </td>
                <td className="muted">{m.source === "groups" ? "identity provider group" : "added here"}</td>
                {admin && (
                  <td>
                    <button
                      className="secondary"
                      data-testid="member-remove"
                      onClick={() => void act(() => api.removeMember(slug, m.user_id), self)}
                    >
                      Remove
                    </button>
                  </td>
                )}
              </tr>
            );
          })}
        </tbody>
      </table>
      {!admin && <p className="muted">Only the project's admins change members and roles.</p>}
      <QuotaPanel slug={slug} platformAdmin={me.user.platform_admin} />
    </section>
  );
}

export function RoleSelect({ value, onChange, testId }: { value: Role; onChange: (role: Role) => void; testId?: string }) {
  return (
    <select data-testid={testId} value={value} onChange={(e) => onChange(e.target.value as Role)}>
      {ROLES.map((r) => (
        <option key={r} value={r}>
          {r}
        </option>
      ))}
    </select>
  );
}
