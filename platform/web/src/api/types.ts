// The backend's JSON, as the pages use it (platform/backend/trainyard/*/schemas.py).

export type JobState =
  | "PENDING"
  | "VALIDATING"
  | "STARTING"
  | "RUNNING"
  | "SUCCEEDED"
  | "FAILED"
  | "CANCELLED";

export const JOB_STATES: JobState[] = [
  "PENDING",
  "VALIDATING",
  "STARTING",
  "RUNNING",
  "SUCCEEDED",
  "FAILED",
  "CANCELLED",
];
export const TERMINAL_STATES: ReadonlySet<string> = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);

export type Metrics = Record<string, number | null>;

export interface Progress {
  epoch: number;
  epochs: number;
  metrics: Metrics;
  elapsed_s: number | null;
  eta_s: number | null;
}

export interface Job {
  id: string;
  framework: string;
  model: string;
  dataset: string;
  epochs: number;
  imgsz: number;
  batch: number;
  gpus: number;
  state: JobState;
  reason: string | null;
  attempt: number;
  last_seq: number;
  progress: Progress | null;
  result: { metrics: Metrics; artifacts: Record<string, string> } | null;
  cancel_requested: boolean;
  tracking: { mlflow_run_url: string | null; model_name: string | null; model_version: string | null } | null;
  created_at: string;
  updated_at: string;
}

export interface JobPage {
  items: Job[];
  total: number;
  limit: number;
  offset: number;
}

export interface JobEvent {
  seq: number;
  job_id: string;
  type: string;
  source: string;
  message: string;
  data: Record<string, unknown>;
  created_at: string;
}

export interface Dataset {
  id: string;
  name: string;
  uri: string;
  format: string;
  status: "pending" | "valid" | "invalid";
  report: {
    ok?: boolean;
    errors?: string[];
    warnings?: string[];
    counts?: Record<string, Record<string, number>>;
    class_histogram?: Record<string, number>;
  } | null;
  created_at: string;
}

export interface PlanRequest {
  framework?: string | null;
  model?: string | null;
  dataset?: string | null;
  task?: string | null;
  epochs?: number | null;
  imgsz?: number | null;
  batch?: number | null;
  gpus?: number | null;
  hyperparameters?: Record<string, unknown>;
}

export interface Question {
  field: string | null;
  question: string;
  choices: string[];
}

export interface TrainingPlan {
  request: PlanRequest;
  assumed: { field: string; value: unknown; reason: string }[];
  questions: Question[];
  dataset: {
    name: string;
    status: string;
    format: string;
    classes: number | null;
    class_names: string[];
    images: number | null;
    warnings: number;
    errors: number;
  } | null;
  estimate: { seconds: number; basis: string } | null;
  based_on_job: string | null;
  ready: boolean;
}

export interface ChatReply {
  conversation_id: string;
  message_id: string;
  text: string;
  plan: TrainingPlan | null;
  planner: "grammar" | "llm";
  notice: string | null;
}

export interface ChatMessage {
  id: string;
  seq: number;
  role: "user" | "assistant";
  content: string;
  plan: TrainingPlan | null;
  planner: string | null;
  notice: string | null;
  job_id: string | null;
  created_at: string;
}
