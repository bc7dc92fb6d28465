// The one way the SPA talks to the backend: `apiFetch` (every call, the chat stream's too)
// names the chosen project in the `Trainyard-Project` header and signs in with the session
// cookie only (same origin): the page never holds a token. Errors carry the backend's
// readable `detail`.
import type {
  ApiKey,
  ApiKeyCreate,
  ApiKeyCreated,
  ApiKeyPage,
  AuditPage,
  ChatMessage,
  Dataset,
  Job,
  JobEvent,
  JobPage,
  Me,
  Member,
  MemberPage,
  MemberSet,
  PlanRequest,
  Project,
  QuotaRead,
  QuotaSet,
  TrainingPlan,
} from "./types";

/** The header collections (jobs, datasets, chat) read the project from (trainyard/auth/projects.py). */
export const PROJECT_HEADER = "Trainyard-Project";

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

let project: string | null = null;
let unauthorized: (() => void) | null = null;

/** The project every later call acts in (null: the user's default). */
export function setRequestProject(slug: string | null): void {
  project = slug;
}

/** Called on any 401: the session ended (expired, signed out in another tab). */
export function onUnauthorized(listener: (() => void) | null): void {
  unauthorized = listener;
}

export async function apiFetch(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  if (project) headers.set(PROJECT_HEADER, project);
  const response = await fetch(path, { ...init, headers, credentials: "same-origin" });
  if (response.status === 401) unauthorized?.();
  return response;
}

async function request<T>(path: string, init?: RequestInit): Promise<T> {
  const response = await apiFetch(path, init);
  const body: unknown = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, errorText(response.status, body));
  return body as T;
}

function send<T>(method: string, path: string, body: unknown): Promise<T> {
  return request<T>(path, {
    method,
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}

function post<T>(path: string, body: unknown): Promise<T> {
  return send<T>("POST", path, body);
}

const remove = <T>(path: string) => request<T>(path, { method: "DELETE" });
const slugPath = (slug: string) => `/v1/projects/${encodeURIComponent(slug)}`;

export const api = {
  me: () => request<Me>("/v1/me"),
  /** Ends the session: where to go next (the IdP's sign-out page, or null). */
  logout: () => request<{ logout_url?: string | null }>("/auth/logout", { method: "POST" }),
  createProject: (slug: string, name: string) => post<Project>("/v1/projects", { slug, name }),
  members: (slug: string) => request<MemberPage>(`${slugPath(slug)}/members`),
  setMember: (slug: string, body: MemberSet) => send<Member>("PUT", `${slugPath(slug)}/members`, body),
  removeMember: (slug: string, userId: string) =>
    remove<null>(`${slugPath(slug)}/members/${encodeURIComponent(userId)}`),
  quota: (slug: string) => request<QuotaRead>(`${slugPath(slug)}/quota`),
  setQuota: (slug: string, body: QuotaSet) => send<QuotaRead>("PUT", `${slugPath(slug)}/quota`, body),
  projectKeys: (slug: string) => request<ApiKeyPage>(`${slugPath(slug)}/api-keys`),
  createProjectKey: (slug: string, body: ApiKeyCreate) => post<ApiKeyCreated>(`${slugPath(slug)}/api-keys`, body),
  revokeProjectKey: (slug: string, id: string) =>
    remove<ApiKey>(`${slugPath(slug)}/api-keys/${encodeURIComponent(id)}`),
  myKeys: () => request<ApiKeyPage>("/v1/me/api-keys"),
  createMyKey: (body: ApiKeyCreate) => post<ApiKeyCreated>("/v1/me/api-keys", body),
  revokeMyKey: (id: string) => remove<ApiKey>(`/v1/me/api-keys/${encodeURIComponent(id)}`),
  projectAudit: (slug: string, limit: number, offset: number) =>
    request<AuditPage>(`${slugPath(slug)}/audit?limit=${limit}&offset=${offset}`),
  allAudit: (limit: number, offset: number) => request<AuditPage>(`/v1/audit?limit=${limit}&offset=${offset}`),

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
  deleteDataset: (id: string) => remove<null>(`/v1/datasets/${encodeURIComponent(id)}`),
  /** The chat's NDJSON stream, as a raw response (its body is read line by line). */
  chatStream: (message: string, conversationId: string | null) =>
    apiFetch("/v1/chat/stream", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ message, conversation_id: conversationId }),
    }),
  checkPlan: (plan: PlanRequest) => post<TrainingPlan>("/v1/chat/plan", { request: plan }),
  startPlan: (conversationId: string, plan: PlanRequest, messageId: string | null) =>
    post<Job>(`/v1/chat/${encodeURIComponent(conversationId)}/start`, {
      request: plan,
      message_id: messageId,
    }),
  conversation: (id: string) =>
    request<{ id: string; messages: ChatMessage[] }>(`/v1/chat/${encodeURIComponent(id)}`),
};
