// The lines of POST /v1/chat/stream: drafts while the language model writes, then the reply.
import type { ChatReply, PlanRequest, Question } from "../api/types";

/** What the model has read from the conversation so far (fields it has not written are null). */
export interface ChatDraft {
  request: PlanRequest;
  questions: Question[];
  based_on_job: string | null;
  note: string | null;
}

export type ChatLine =
  | ({ type: "draft" } & ChatDraft)
  | ({ type: "reply" } & ChatReply)
  | { type: "error"; detail: string; code: string };

/** The draft in words, for the reply's bubble until the reply itself arrives. */
export function draftText(draft: ChatDraft): string {
  const r = draft.request;
  const read = [
    r.model,
    r.dataset && `on ${r.dataset}`,
    r.epochs != null && `${r.epochs} epochs`,
    r.imgsz != null && `${r.imgsz} px`,
    r.batch != null && `batch ${r.batch}`,
    r.gpus != null && (r.gpus ? `${r.gpus} GPU${r.gpus === 1 ? "" : "s"}` : "the CPU"),
  ].filter((part): part is string => Boolean(part));
  const reading = read.length ? `Reading: ${read.join(", ")}…` : "Reading…";
  return draft.note ? `${draft.note}\n${reading}` : reading;
}
