import type { PriorityName } from "./api/types";

export interface PriorityBadge {
  label: string;
  className: string;
}

/** The badge a job's priority gets beside its state; none for "normal", which most jobs are,
 * so the others stand out. */
export function priorityBadge(priority: PriorityName | null | undefined): PriorityBadge | null {
  if (!priority || priority === "normal") return null;
  return { label: `${priority} priority`, className: `badge priority-${priority}` };
}

/** The plan card shows a priority only when one was asked for (or edited in); unset, the job
 * gets the default (normal) and the card says nothing about it. */
export function planShowsPriority(priority: PriorityName | null | undefined, questions: { field?: string | null }[]): boolean {
  return Boolean(priority) || questions.some((q) => q.field === "priority");
}
