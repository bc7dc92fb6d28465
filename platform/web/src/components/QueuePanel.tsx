import type { QueueStatus } from "../api/types";
import type { QueuePlace } from "../stream/queue";
import { queueSummary } from "../stream/queue";

/** A QUEUED job's place, why it waits and when it should start; live from its stream. */
export function QueuePanel({ live, read }: { live: QueuePlace | null; read: QueueStatus | null | undefined }) {
  const summary = queueSummary(live, read, new Date());
  if (!summary) return null;
  return (
    <div className="queue-panel notice" data-testid="queue-panel">
      <b>Queued {summary.place}</b> · {summary.reason}
      {summary.gpusAhead > 0 && ` · ${summary.gpusAhead} GPU${summary.gpusAhead === 1 ? "" : "s"} ahead`}
      <span className="muted" data-testid="queue-start">
        {" "}
        · estimated start: {summary.start}
      </span>
    </div>
  );
}
