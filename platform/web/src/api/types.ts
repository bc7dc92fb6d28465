// Names for the backend's JSON the pages use. The shapes are generated from the backend's
// OpenAPI into ./openapi.ts (`uv run python platform/backend/tools/web_api_types.py`; a
// platform test fails while that file is stale): only names and constants are written here.
import type { components } from "./openapi";

type Schemas = components["schemas"];

/** A response body as sent: FastAPI sends every field of a response model, those with
 * defaults too, while the OpenAPI marks those optional (they are, in a request). */
export type Served<T> = T extends (infer Item)[]
  ? Served<Item>[]
  : T extends object
    ? { [Key in keyof T]-?: Served<T[Key]> }
    : T;

export type JobState = Schemas["JobState"];

export const JOB_STATES: JobState[] = [
  "PENDING",
  "VALIDATING",
  "QUEUED",
  "STARTING",
  "RUNNING",
  "SUCCEEDED",
  "FAILED",
  "CANCELLED",
];
export const TERMINAL_STATES: ReadonlySet<string> = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);

export type Progress = Served<Schemas["Progress"]>;
export type Metrics = Progress["metrics"];
export type Job = Served<Schemas["JobRead"]>;
/** Why a QUEUED job waits: its place, what holds it, an estimated start (null otherwise). */
export type QueueStatus = Served<Schemas["QueueStatus"]>;
export type JobPage = Served<Schemas["JobPage"]>;
export type JobEvent = Served<Schemas["EventRead"]>;
export type EventPage = Served<Schemas["EventPage"]>;
export type ErrorBody = Schemas["ErrorBody"];

/** A dataset's validation report: the backend stores it as a free-form object. */
export interface DatasetReport {
  ok?: boolean;
  errors?: string[];
  warnings?: string[];
  counts?: Record<string, Record<string, number>>;
  class_histogram?: Record<string, number>;
}
export type Dataset = Omit<Served<Schemas["DatasetRead"]>, "report"> & {
  report: DatasetReport | null;
};
export type DatasetPage = Served<Schemas["DatasetPage"]>;

/** A plan card's request as the UI edits and sends it (every field may be left out). */
export type PlanRequest = Schemas["PlanRequest"];
export type Question = Served<Schemas["Question"]>;
export type TrainingPlan = Served<Schemas["TrainingPlan"]>;
export type ChatReply = Served<Schemas["ChatReply"]>;
export type ChatMessage = Served<Schemas["MessageRead"]>;

export type Me = Served<Schemas["MeRead"]>;
export type User = Served<Schemas["UserRead"]>;
export type Project = Served<Schemas["ProjectRead"]>;
export type ProjectPage = Served<Schemas["ProjectPage"]>;
export type Member = Served<Schemas["MemberRead"]>;
export type MemberPage = Served<Schemas["MemberPage"]>;
/** Add a member (by email or user id) or change a member's role. */
export type MemberSet = Schemas["MemberSet"];
export type ApiKey = Served<Schemas["ApiKeyRead"]>;
export type ApiKeyCreated = Served<Schemas["ApiKeyCreated"]>;
export type ApiKeyCreate = Schemas["ApiKeyCreate"];
export type ApiKeyPage = Served<Schemas["ApiKeyPage"]>;
export type AuditEvent = Served<Schemas["AuditEventRead"]>;
export type AuditPage = Served<Schemas["AuditPage"]>;
/** A project's quota, its usage now and this month's GPU-hours; QuotaSet: what admins send. */
export type QuotaRead = Served<Schemas["QuotaRead"]>;
export type QuotaSet = Served<Schemas["QuotaSet"]>;
export type PriorityName = QuotaSet["max_priority"];
export const PRIORITIES: PriorityName[] = ["low", "normal", "high", "urgent"];
