import type { PriorityName } from "../api/types";
import { priorityBadge } from "../priority";

/** A job's priority beside its state, when it is not normal. */
export function PriorityBadge({ priority }: { priority: PriorityName | null | undefined }) {
  const badge = priorityBadge(priority);
  if (!badge) return null;
  return (
    <span className={badge.className} data-testid="job-priority">
      {badge.label}
    </span>
  );
}
