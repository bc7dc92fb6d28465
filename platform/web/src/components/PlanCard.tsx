import { useEffect, useRef, useState } from "react";
import { api } from "../api/client";
import { useCan } from "../auth/identity";
import type { PlanRequest, TrainingPlan } from "../api/types";
import { PRIORITIES } from "../api/types";
import { duration } from "../format";
import { planShowsPriority } from "../priority";

const NUMBER_FIELDS = ["epochs", "imgsz", "batch", "gpus"] as const;
const LABELS: Record<string, string> = {
  model: "Model",
  dataset: "Dataset",
  epochs: "Epochs",
  imgsz: "Image size",
  batch: "Batch",
  gpus: "GPUs",
};

/** The plan before anything runs: editable, checked again on every edit, started on Start. */
export function PlanCard({
  initial,
  onStart,
  startedJob,
}: {
  initial: TrainingPlan;
  onStart: (request: PlanRequest) => Promise<void>;
  startedJob: string | null;
}) {
  const [plan, setPlan] = useState(initial);
  const [request, setRequest] = useState<PlanRequest>(initial.request);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const edits = useRef(0);
  const mayStart = useCan("submit");

  useEffect(() => {
    if (edits.current === 0) return;
    const handle = window.setTimeout(() => {
      api.checkPlan(request).then(setPlan, (e: Error) => setError(e.message));
    }, 300);
    return () => window.clearTimeout(handle);
  }, [request]);

  const edit = (field: string, raw: string) => {
    edits.current += 1;
    const value = (NUMBER_FIELDS as readonly string[]).includes(field) ? (raw === "" ? null : Number(raw)) : raw || null;
    setRequest((current) => ({ ...current, [field]: value }));
  };

  const start = async () => {
    setBusy(true);
    setError(null);
    try {
      await onStart(request);
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  };

  const dataset = plan.dataset;
  return (
    <div className="plan-card" data-testid="plan-card">
      <div className="plan-head">
        <strong>Training plan</strong>
        <span className="muted">{plan.request.framework ?? "framework from the model"}</span>
      </div>
      <div className="plan-fields">
        {(["model", "dataset", ...NUMBER_FIELDS] as const).map((field) => (
          <label key={field}>
            <span>{LABELS[field]}</span>
            <input
              data-testid={`plan-field-${field}`}
              type={(NUMBER_FIELDS as readonly string[]).includes(field) ? "number" : "text"}
              value={String(request[field] ?? "")}
              disabled={startedJob !== null}
              onChange={(e) => edit(field, e.target.value)}
            />
          </label>
        ))}
        {planShowsPriority(request.priority, plan.questions) && (
          <label>
            <span>Priority</span>
            <select
              data-testid="plan-field-priority"
              value={request.priority ?? "normal"}
              disabled={startedJob !== null}
              onChange={(e) => edit("priority", e.target.value)}
            >
              {PRIORITIES.map((p) => (
                <option key={p} value={p}>
                  {p}
                </option>
              ))}
            </select>
          </label>
        )}
      </div>
      {dataset && (
        <p className="plan-dataset">
          Dataset <b>{dataset.name}</b>: <span className={`badge ${dataset.status}`}>{dataset.status}</span>
          {dataset.classes !== null && <> · {dataset.classes} classes</>}
          {dataset.images !== null && <> · {dataset.images} images</>}
          {dataset.warnings > 0 && <> · {dataset.warnings} warnings</>}
        </p>
      )}
      {plan.estimate && (
        <p data-testid="plan-estimate">
          About <b>{duration(plan.estimate.seconds)}</b> <span className="muted">({plan.estimate.basis})</span>
        </p>
      )}
      {plan.assumed.length > 0 && (
        <ul className="assumed">
          {plan.assumed.map((a) => (
            <li key={a.field} data-testid="plan-assumption">
              Assumed {a.field} = {String(a.value)}: {a.reason}
            </li>
          ))}
        </ul>
      )}
      {plan.questions.length > 0 && (
        <ul className="questions">
          {plan.questions.map((q, i) => (
            <li key={i} data-testid="plan-question">
              {q.question}
            </li>
          ))}
        </ul>
      )}
      {error && <p className="error">{error}</p>}
      {startedJob ? (
        <a href={`/jobs/${startedJob}`}>Started {startedJob} →</a>
      ) : !mayStart ? (
        <p className="muted" data-testid="plan-viewer">
          Viewers cannot start runs: ask a project admin for the member role.
        </p>
      ) : (
        <button data-testid="plan-start" disabled={!plan.ready || busy} onClick={() => void start()}>
          {busy ? "Starting…" : "Start"}
        </button>
      )}
    </div>
  );
}
