import { useEffect, useState } from "react";
import { Link } from "react-router-dom";
import { api } from "../api/client";
import type { Job } from "../api/types";
import { JOB_STATES } from "../api/types";
import { PriorityBadge } from "../components/PriorityBadge";

/** Every job, newest first, filtered by state and by model or dataset text. */
export function JobsPage() {
  const [state, setState] = useState<string>("");
  const [text, setText] = useState("");
  const [jobs, setJobs] = useState<Job[]>([]);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    const load = () => api.jobs(state || null, 200).then((page) => setJobs(page.items), (e: Error) => setError(e.message));
    void load();
    const timer = window.setInterval(() => void load(), 5000);
    return () => window.clearInterval(timer);
  }, [state]);

  const needle = text.trim().toLowerCase();
  const shown = needle ? jobs.filter((j) => `${j.model} ${j.dataset} ${j.id}`.toLowerCase().includes(needle)) : jobs;
  return (
    <section>
      <h1>Jobs</h1>
      <div className="filters">
        <select data-testid="jobs-filter-state" value={state} onChange={(e) => setState(e.target.value)}>
          <option value="">all states</option>
          {JOB_STATES.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
        <input placeholder="model or dataset" value={text} onChange={(e) => setText(e.target.value)} />
      </div>
      {error && <p className="error">{error}</p>}
      <table className="list">
        <thead>
          <tr>
            <th>Job</th>
            <th>Model</th>
            <th>Dataset</th>
            <th>State</th>
            <th>Progress</th>
          </tr>
        </thead>
        <tbody>
          {shown.map((job) => (
            <tr key={job.id} data-testid="job-row">
              <td>
                <Link to={`/jobs/${job.id}`}>{job.id.slice(0, 12)}…</Link>
              </td>
              <td>{job.model}</td>
              <td>{job.dataset}</td>
              <td>
                <span className={`badge state-${job.state.toLowerCase()}`}>{job.state}</span>{" "}
                <PriorityBadge priority={job.priority} />
                {job.queue && (
                  <span className="muted" data-testid="queue-position" title={job.queue.reason}>
                    {" "}
                    {job.queue.position > 0 ? `#${job.queue.position}` : "next"}
                  </span>
                )}
              </td>
              <td>{job.progress ? `${job.progress.epoch}/${job.progress.epochs}` : "–"}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {shown.length === 0 && <p className="muted">No jobs yet: ask for one in the chat.</p>}
    </section>
  );
}
