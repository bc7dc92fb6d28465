import { useEffect, useState } from "react";
import { api } from "../api/client";
import { useCan } from "../auth/identity";
import type { Dataset } from "../api/types";

/** The user's datasets with their validation reports, and an upload form for a .zip. */
export function DatasetsPage() {
  const [datasets, setDatasets] = useState<Dataset[]>([]);
  const [open, setOpen] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [uploading, setUploading] = useState(false);
  const mayWrite = useCan("write_datasets");

  const load = () => api.datasets().then((page) => setDatasets(page.items), (e: Error) => setError(e.message));
  useEffect(() => {
    void load();
  }, []);

  const upload = async (form: HTMLFormElement) => {
    setUploading(true);
    setError(null);
    try {
      const created = await api.uploadDataset(new FormData(form));
      form.reset();
      setOpen(created.id);
      await load();
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setUploading(false);
    }
  };

  const remove = async (dataset: Dataset) => {
    if (!window.confirm(`Delete dataset ${dataset.name}? An uploaded dataset's files are deleted too.`)) return;
    setError(null);
    try {
      await api.deleteDataset(dataset.id);
      await load();
    } catch (e) {
      setError((e as Error).message);
    }
  };

  return (
    <section>
      <h1>Datasets</h1>
      {mayWrite && (
        <form
          className="upload"
          data-testid="dataset-upload"
          onSubmit={(e) => {
            e.preventDefault();
            void upload(e.currentTarget);
          }}
        >
          <input name="name" placeholder="name" required pattern="[A-Za-z0-9][A-Za-z0-9._-]{0,127}" />
          <select name="format" defaultValue="yolo">
            <option value="yolo">YOLO detection</option>
            <option value="imagefolder">ImageFolder classification</option>
            <option value="text">Text classification (JSONL/CSV)</option>
          </select>
          <input name="file" type="file" accept=".zip" required />
          <button type="submit" disabled={uploading}>
            {uploading ? "Uploading…" : "Upload .zip"}
          </button>
        </form>
      )}
      {error && <p className="error">{error}</p>}
      <ul className="datasets">
        {datasets.map((d) => (
          <li key={d.id} data-testid="dataset-row">
            <button className="link" onClick={() => setOpen(open === d.id ? null : d.id)}>
              <b>{d.name}</b> <span className={`badge ${d.status}`}>{d.status}</span> <span className="muted">{d.format}</span>
            </button>
            {mayWrite && (
              <button className="link" data-testid="dataset-delete" onClick={() => void remove(d)}>
                delete
              </button>
            )}
            {open === d.id && <Report dataset={d} />}
          </li>
        ))}
      </ul>
      {datasets.length === 0 && <p className="muted">No datasets yet.</p>}
    </section>
  );
}

function Report({ dataset }: { dataset: Dataset }) {
  const report = dataset.report;
  if (!report) return <p className="muted">Not validated yet.</p>;
  const histogram = Object.entries(report.class_histogram ?? {});
  const peak = Math.max(1, ...histogram.map(([, n]) => n));
  return (
    <div className="report">
      <p className="muted">{dataset.uri}</p>
      {(report.errors ?? []).map((e, i) => (
        <p key={`e${i}`} className="error">
          {e}
        </p>
      ))}
      {(report.warnings ?? []).map((w, i) => (
        <p key={`w${i}`} className="notice">
          {w}
        </p>
      ))}
      <table className="list">
        <thead>
          <tr>
            <th>split</th>
            <th>images</th>
            <th>labelled</th>
            <th>boxes</th>
          </tr>
        </thead>
        <tbody>
          {Object.entries(report.counts ?? {}).map(([split, c]) => (
            <tr key={split}>
              <td>{split}</td>
              <td>{c["images"] ?? "–"}</td>
              <td>{c["labelled"] ?? "–"}</td>
              <td>{c["boxes"] ?? "–"}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <div className="histogram">
        {histogram.map(([name, n]) => (
          <div key={name} className="bar-row">
            <span>{name}</span>
            <div className="bar" style={{ width: `${(100 * n) / peak}%` }} />
            <span>{n}</span>
          </div>
        ))}
      </div>
    </div>
  );
}
