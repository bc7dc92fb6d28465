import { useEffect, useState } from "react";
import { api } from "../api/client";
import { PRIORITIES, type PriorityName, type QuotaRead } from "../api/types";
import { quotaBody, quotaForm, quotaRows, type QuotaForm } from "../projects/quota";

/** The project's usage against its quota (every member); platform admins also set it. */
export function QuotaPanel({ slug, platformAdmin }: { slug: string; platformAdmin: boolean }) {
  const [read, setRead] = useState<QuotaRead | null>(null);
  const [form, setForm] = useState<QuotaForm | null>(null);
  const [error, setError] = useState<string | null>(null);

  const show = (next: QuotaRead) => {
    setRead(next);
    setForm(quotaForm(next.quota));
  };
  useEffect(() => {
    api.quota(slug).then(show, (e: Error) => setError(e.message));
  }, [slug]);

  if (!read || !form) return error ? <p className="error">{error}</p> : null;
  const save = async () => {
    const checked = quotaBody(form);
    if ("errors" in checked) {
      setError(Object.entries(checked.errors).map(([field, why]) => `${field}: ${why}`).join("; "));
      return;
    }
    setError(null);
    try {
      show(await api.setQuota(slug, checked.body));
    } catch (e) {
      setError((e as Error).message);
    }
  };
  const box = (key: "gpus" | "runs" | "gpuHours", placeholder: string) => (
    <input
      data-testid={`quota-${key}`}
      placeholder={placeholder}
      value={form[key]}
      onChange={(e) => setForm({ ...form, [key]: e.target.value })}
    />
  );
  return (
    <section data-testid="quota">
      <h2>Quota</h2>
      <table className="list">
        <thead>
          <tr>
            <th />
            <th>Used</th>
            <th>Quota</th>
            <th>Left</th>
          </tr>
        </thead>
        <tbody>
          {quotaRows(read).map((row) => (
            <tr key={row.label} data-testid="quota-row" className={row.full ? "warning" : undefined}>
              <td>{row.label}</td>
              <td>{row.used}</td>
              <td>{row.limit}</td>
              <td>{row.left}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <p className="muted">
        Members may ask for priority up to {read.quota.max_priority}; the project's admins up to urgent.
        {read.budget_exhausted && " This month's GPU-hours are used up: GPU jobs wait."}
      </p>
      {platformAdmin && (
        <form
          className="filters"
          data-testid="quota-set"
          onSubmit={(e) => {
            e.preventDefault();
            void save();
          }}
        >
          {box("gpus", "GPUs (empty: no limit)")}
          {box("runs", "runs (empty: no limit)")}
          {box("gpuHours", "GPU-hours a month")}
          <select
            data-testid="quota-max-priority"
            value={form.maxPriority}
            onChange={(e) => setForm({ ...form, maxPriority: e.target.value as PriorityName })}
          >
            {PRIORITIES.map((p) => (
              <option key={p} value={p}>
                members up to {p}
              </option>
            ))}
          </select>
          <button type="submit">Set quota</button>
        </form>
      )}
      {error && <p className="error">{error}</p>}
    </section>
  );
}
