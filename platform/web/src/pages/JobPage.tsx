import { useEffect, useMemo, useState } from "react";
import { Link, useParams } from "react-router-dom";
import { api } from "../api/client";
import { useCan } from "../auth/identity";
import type { Job } from "../api/types";
import { TERMINAL_STATES } from "../api/types";
import { LineChart } from "../charts/LineChart";
import { lossData, metricData } from "../charts/series";
import { PriorityBadge } from "../components/PriorityBadge";
import { QueuePanel } from "../components/QueuePanel";
import { SystemCharts } from "../components/SystemCharts";
import { duration, metric } from "../format";
import { useJobStream } from "../stream/useJobStream";

/** One job, live: state, progress with ETA, charts, timeline, log tail, links, cancel. */
export function JobPage() {
  const { jobId = "" } = useParams();
  const { view, connection } = useJobStream(jobId);
  const [job, setJob] = useState<Job | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [cancelling, setCancelling] = useState(false);
  const mayCancel = useCan("cancel");

  // The job's record (request, result, tracking link): again whenever its state changes, and
  // when its place in the queue does (the read carries the estimated start).
  useEffect(() => {
    api.job(jobId).then(setJob, (e: Error) => setError(e.message));
  }, [jobId, view.state, view.queue?.position, view.queue?.reason]);

  const state = view.state ?? job?.state ?? "…";
  const terminal = TERMINAL_STATES.has(state);
  const epochs = view.epochs ?? job?.epochs ?? null;
  const percent = epochs ? Math.round((100 * view.epoch) / epochs) : 0;
  const losses = useMemo(() => lossData(view.points), [view.points]);
  const metrics = useMemo(() => metricData(view.points), [view.points]);

  const cancel = async () => {
    setCancelling(true);
    try {
      setJob(await api.cancel(jobId));
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setCancelling(false);
    }
  };

  return (
    <section className="job">
      <div className="job-head">
        <div>
          <h1>{job ? `${job.model} on ${job.dataset}` : jobId}</h1>
          <p className="muted">
            {jobId}
            {job && ` · ${job.epochs} epochs at ${job.imgsz} px · batch ${job.batch} · ${job.gpus ? `${job.gpus} GPU` : "CPU"}`}
            {view.attempt > 1 && ` · attempt ${view.attempt}`}
          </p>
        </div>
        <div className="job-actions">
          <span className={`badge state-${state.toLowerCase()}`} data-testid="job-state">
            {state}
          </span>
          <PriorityBadge priority={job?.priority} />
          <span className={`conn ${connection}`} data-testid="connection-status">
            {connection}
          </span>
          {mayCancel && (
            <button data-testid="job-cancel" disabled={terminal || cancelling || job?.cancel_requested} onClick={() => void cancel()}>
              {job?.cancel_requested && !terminal ? "Cancelling…" : "Cancel"}
            </button>
          )}
        </div>
      </div>
      {error && <p className="error">{error}</p>}
      {(view.reason ?? job?.reason) && state === "FAILED" && <p className="error">{view.reason ?? job?.reason}</p>}
      {view.waiting && <p className="notice">{view.waiting}</p>}
      {state === "QUEUED" && <QueuePanel live={view.queue} read={job?.queue} />}

      <div
        className="progress"
        role="progressbar"
        aria-valuemin={0}
        aria-valuemax={epochs ?? 0}
        aria-valuenow={view.epoch}
        data-testid="job-progress"
      >
        <div className="progress-fill" style={{ width: `${percent}%` }} />
        <span className="progress-label">
          epoch {view.epoch}/{epochs ?? "?"} · ETA {terminal ? "–" : duration(view.etaS)}
        </span>
      </div>

      {Object.keys(view.metrics).length > 0 && (
        <p className="metrics">
          {Object.entries(view.metrics)
            .filter(([name]) => !name.startsWith("lr"))
            .map(([name, value]) => (
              <span key={name}>
                {name} <b>{metric(value)}</b>
              </span>
            ))}
        </p>
      )}

      <div className="charts">
        <LineChart data={losses} title="Loss" testId="loss-chart" />
        <LineChart data={metrics} title="Metrics" testId="metric-chart" />
      </div>

      <SystemCharts samples={view.system} />

      <div className="links">
        {job?.tracking?.mlflow_run_url && (
          <a data-testid="mlflow-link" href={job.tracking.mlflow_run_url} target="_blank" rel="noreferrer">
            MLflow run
          </a>
        )}
        {job?.trace_url && (
          <a data-testid="trace-link" href={job.trace_url} target="_blank" rel="noreferrer">
            Trace
          </a>
        )}
        {job?.trace_id && (
          <span data-testid="trace-id" title="The job's OpenTelemetry trace id">
            trace <code>{job.trace_id}</code>
          </span>
        )}
        {Object.keys(job?.result?.artifacts ?? {})
          .filter((name) => name !== "run_dir")
          .map((name) => (
            <a key={name} data-testid="artifact-link" href={api.artifactUrl(jobId, name)} download>
              Download {name}
            </a>
          ))}
        <Link to="/jobs">All jobs</Link>
      </div>

      <div className="columns">
        <div>
          <h2>Timeline</h2>
          <ol className="timeline" data-testid="event-timeline" data-last-seq={view.lastSeq} data-gaps={view.gaps}>
            {view.timeline.map((entry) => (
              <li key={entry.seq} className={entry.tone} data-seq={entry.seq}>
                <time>{new Date(entry.at).toLocaleTimeString()}</time> <b>{entry.type}</b> {entry.message}
              </li>
            ))}
          </ol>
        </div>
        <div>
          <h2>Log</h2>
          <pre className="log" data-testid="log-tail">
            {view.log.length ? view.log.join("\n") : "The trainer's log lines appear here."}
          </pre>
        </div>
      </div>
    </section>
  );
}
