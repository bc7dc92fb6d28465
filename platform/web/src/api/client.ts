// A typed fetch client of the backend; errors carry the backend's readable `detail`.
import type { ChatMessage, Dataset, Job, JobEvent, JobPage, PlanRequest, TrainingPlan } from "./types";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** The human text of an error body: `detail` is a string, or a list of field errors. */
export function errorText(status: number, body: unknown): string {
  if (body && typeof body === "object" && "detail" in body) {
    const detail = (body as { detail: unknown }).detail;
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) {
      return detail
        .map((item: { loc?: unknown[]; msg?: string }) =>
          [item.loc?.slice(1).join("."), item.msg].filter(Boolean).join(": "),
        )
        .join("; ");
    }
  }
  return `request failed (${status})`;
}

async function request<T>(path: string, init?: RequestInit): Promise<T> {
  const response = await fetch(path, init);
  const body: unknown = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, errorText(response.status, body));
  return body as T;
}

function post<T>(path: string, body: unknown): Promise<T> {
  return request<T>(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}

export const api = {
  jobs: (state: string | null, limit = 50) =>
    request<JobPage>(`/v1/jobs?limit=${limit}${state ? `&state=${state}` : ""}`),
  job: (id: string) => request<Job>(`/v1/jobs/${encodeURIComponent(id)}`),
  events: (id: string, afterSeq = 0) =>
    request<{ items: JobEvent[]; last_seq: number }>(
      `/v1/jobs/${encodeURIComponent(id)}/events?after_seq=${afterSeq}`,
    ),
  cancel: (id: string) => post<Job>(`/v1/jobs/${encodeURIComponent(id)}/cancel`, {}),
  artifactUrl: (id: string, name: string) =>
    `/v1/jobs/${encodeURIComponent(id)}/artifacts/${encodeURIComponent(name)}`,
  datasets: () => request<{ items: Dataset[] }>("/v1/datasets"),
  uploadDataset: (form: FormData) => request<Dataset>("/v1/datasets", { method: "POST", body: form }),
  checkPlan: (plan: PlanRequest) => post<TrainingPlan>("/v1/chat/plan", { request: plan }),
  startPlan: (conversationId: string, plan: PlanRequest, messageId: string | null) =>
    post<Job>(`/v1/chat/${encodeURIComponent(conversationId)}/start`, {
      request: plan,
      message_id: messageId,
    }),
  conversation: (id: string) =>
    request<{ id: string; messages: ChatMessage[] }>(`/v1/chat/${encodeURIComponent(id)}`),
};
