// "Why queued": a QUEUED job's place and reason, from its stream's `queue` events (live) and
// its read (`job.queue`, which alone carries the estimated start).
import type { QueueStatus } from "../api/types";
import { duration } from "../format";

/** A `queue` event's data: what an admission pass said of the job. */
export interface QueuePlace {
  position: number;
  gpusAhead: number;
  hold: string;
  reason: string;
}

/** The place a `queue` event carries; null when its data is not one. */
export function queuePlace(data: Record<string, unknown>): QueuePlace | null {
  const { position, gpus_ahead: gpusAhead, hold, reason } = data;
  if (typeof position !== "number" || typeof reason !== "string") return null;
  return {
    position,
    gpusAhead: typeof gpusAhead === "number" ? gpusAhead : 0,
    hold: typeof hold === "string" ? hold : "",
    reason,
  };
}

export interface QueueSummary {
  /** "#2", "next" when nothing holds it any more, or "(place unknown)" when Kueue holds it
   * without saying where (its visibility API is not served). */
  place: string;
  reason: string;
  gpusAhead: number;
  /** "in about 3m 20s", "any moment now" or "unknown". */
  start: string;
}

/** What the Queued panel shows: the stream's newest place wins over the read's (a pass may
 * have moved the job since), the estimated start comes from the read. */
export function queueSummary(live: QueuePlace | null, read: QueueStatus | null | undefined, now: Date): QueueSummary | null {
  const position = live?.position ?? read?.position;
  const reason = live?.reason ?? read?.reason;
  const hold = live?.hold ?? read?.hold;
  if (position === undefined || reason === undefined) return null;
  return {
    place: position > 0 ? `#${position}` : hold === "kueue" ? "(place unknown)" : "next",
    reason,
    gpusAhead: live?.gpusAhead ?? read?.gpus_ahead ?? 0,
    start: startsIn(read?.estimated_start ?? null, now),
  };
}

function startsIn(estimatedStart: string | null, now: Date): string {
  if (estimatedStart === null) return "unknown";
  const seconds = (new Date(estimatedStart).getTime() - now.getTime()) / 1000;
  if (!Number.isFinite(seconds)) return "unknown";
  return seconds < 1 ? "any moment now" : `in about ${duration(seconds)}`;
}
