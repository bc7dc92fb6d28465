// A job's view, folded from its events in seq order. Pure: replaying the same events (a reload,
// a reconnect that repeats some) always gives the same view.
import type { JobEvent, Metrics } from "../api/types";
import { TERMINAL_STATES } from "../api/types";
import type { SystemSample } from "../charts/system";
import { MAX_SYSTEM_SAMPLES, systemSample } from "../charts/system";
import type { QueuePlace } from "./queue";
import { queuePlace } from "./queue";

export const MAX_LOG_LINES = 200;
export const MAX_TIMELINE = 500;

export interface EpochPoint {
  epoch: number;
  metrics: Metrics;
}

export interface TimelineEntry {
  seq: number;
  type: string;
  message: string;
  at: string;
  /** Pending, failed or disrupted: shown highlighted. */
  tone: "normal" | "warning" | "error" | "success";
}

export interface JobView {
  lastSeq: number;
  state: string | null;
  reason: string | null;
  attempt: number;
  epoch: number;
  epochs: number | null;
  etaS: number | null;
  elapsedS: number | null;
  metrics: Metrics;
  /** One point per completed epoch that reported metrics (the newest report wins). */
  points: EpochPoint[];
  /** Every heartbeat's system metrics, the newest `MAX_SYSTEM_SAMPLES`. */
  system: SystemSample[];
  timeline: TimelineEntry[];
  log: string[];
  /** Why the job waits (a pending reason), until it runs. */
  waiting: string | null;
  /** Its place in the queue (the newest `queue` event), while QUEUED. */
  queue: QueuePlace | null;
  /** Events that did not follow the one before: the stream fills gaps, so this stays 0. */
  gaps: number;
}

export const emptyView: JobView = {
  lastSeq: 0,
  state: null,
  reason: null,
  attempt: 0,
  epoch: 0,
  epochs: null,
  etaS: null,
  elapsedS: null,
  metrics: {},
  points: [],
  system: [],
  timeline: [],
  log: [],
  waiting: null,
  queue: null,
  gaps: 0,
};

function num(value: unknown): number | null {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

function tone(event: JobEvent): TimelineEntry["tone"] {
  if (event.type === "state") {
    const to = event.data["to"];
    if (to === "FAILED") return "error";
    if (to === "SUCCEEDED") return "success";
    return "normal";
  }
  if (["attempt_pending", "attempt_disrupted", "attempt_retried", "warning", "tracking_warning"].includes(event.type)) {
    return "warning";
  }
  return "normal";
}

function logLines(event: JobEvent): string[] {
  const lines = event.data["lines"];
  if (Array.isArray(lines)) return lines.filter((line): line is string => typeof line === "string");
  return event.message ? event.message.split("\n") : [];
}

/** The view after `event`; events at or below the last applied seq change nothing. */
export function applyEvent(view: JobView, event: JobEvent): JobView {
  if (event.seq <= view.lastSeq) return view;
  const next: JobView = {
    ...view,
    lastSeq: event.seq,
    gaps: view.gaps + (view.lastSeq > 0 && event.seq !== view.lastSeq + 1 ? 1 : 0),
  };
  const data = event.data;
  switch (event.type) {
    case "state": {
      next.state = typeof data["to"] === "string" ? data["to"] : next.state;
      if (typeof data["reason"] === "string") next.reason = data["reason"];
      if (next.state === "RUNNING" || (next.state && TERMINAL_STATES.has(next.state))) next.waiting = null;
      if (next.state !== "QUEUED") next.queue = null;
      if (next.state === "SUCCEEDED") {
        next.etaS = 0;
        if (next.epochs !== null) next.epoch = next.epochs;
      }
      break;
    }
    case "heartbeat": {
      const epoch = num(data["epoch"]) ?? 0;
      next.waiting = null;
      const sample = systemSample(data, event.created_at);
      if (sample) next.system = [...view.system, sample].slice(-MAX_SYSTEM_SAMPLES);
      if (epoch < view.epoch) break; // a late heartbeat never moves the view back
      next.epoch = epoch;
      next.epochs = num(data["epochs"]) ?? next.epochs;
      next.etaS = num(data["eta_s"]);
      next.elapsedS = num(data["elapsed_s"]) ?? next.elapsedS;
      const metrics = (data["metrics"] ?? {}) as Metrics;
      if (Object.keys(metrics).length > 0 && epoch > 0) {
        next.metrics = metrics;
        next.points = [...view.points.filter((p) => p.epoch !== epoch), { epoch, metrics }].sort(
          (a, b) => a.epoch - b.epoch,
        );
      }
      return next; // heartbeats are the chart, not the timeline
    }
    case "attempt": {
      next.attempt = num(data["attempt"]) ?? next.attempt;
      break;
    }
    case "queue": {
      next.queue = queuePlace(data) ?? next.queue;
      break;
    }
    case "attempt_pending": {
      next.waiting = event.message || "waiting for the cluster";
      break;
    }
    case "log": {
      next.log = [...view.log, ...logLines(event)].slice(-MAX_LOG_LINES);
      return next;
    }
    default:
      break;
  }
  const entry: TimelineEntry = {
    seq: event.seq,
    type: event.type,
    message: event.message || event.type,
    at: event.created_at,
    tone: tone(event),
  };
  next.timeline = [...view.timeline, entry].slice(-MAX_TIMELINE);
  return next;
}

export function applyEvents(view: JobView, events: JobEvent[]): JobView {
  return events.reduce(applyEvent, view);
}
