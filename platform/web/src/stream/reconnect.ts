// Where and when the job stream reconnects: always after the last event seen (no gap, no
// duplicate), with a growing pause, never for an unknown job.

export const CLOSE_DONE = 1000;
export const CLOSE_TRY_AGAIN_LATER = 1013;
export const CLOSE_UNKNOWN_JOB = 4404;

export function streamUrl(location: { protocol: string; host: string }, jobId: string, afterSeq: number): string {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/v1/jobs/${encodeURIComponent(jobId)}/stream?after_seq=${afterSeq}`;
}

/** Milliseconds to wait before reconnect attempt `attempt` (0-based): 0.5 s doubling to 10 s. */
export function backoffMs(attempt: number): number {
  return Math.min(10_000, 500 * 2 ** Math.max(0, attempt));
}

/** Whether to reconnect after the socket closed with `code` (the job's end is not a drop). */
export function shouldReconnect(code: number, terminal: boolean): boolean {
  if (code === CLOSE_UNKNOWN_JOB) return false;
  if (code === CLOSE_DONE && terminal) return false;
  return true;
}
