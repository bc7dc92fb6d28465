// A project's quota as the Members page shows it (usage against each limit) and the form a
// platform admin fills (text boxes: empty lifts a limit), checked as the backend checks it.
import type { PriorityName, QuotaRead, QuotaSet } from "../api/types";

export interface QuotaRow {
  label: string;
  used: string;
  limit: string;
  left: string;
  /** Nothing left under this limit: jobs it holds wait. */
  full: boolean;
}

export interface QuotaForm {
  gpus: string;
  runs: string;
  gpuHours: string;
  maxPriority: PriorityName;
}

const MAX_GPUS = 1024;
const MAX_RUNS = 2 ** 31 - 1;
const MAX_GPU_HOURS = MAX_GPUS * 744;

const shown = (value: number | null) => (value === null ? "no limit" : String(+value.toFixed(2)));

export function quotaRows(read: QuotaRead): QuotaRow[] {
  const { quota, usage, remaining } = read;
  return [
    { label: "GPUs", used: String(usage.gpus), limit: shown(quota.gpus), left: shown(remaining.gpus), full: remaining.gpus === 0 },
    { label: "Runs", used: String(usage.runs), limit: shown(quota.runs), left: shown(remaining.runs), full: remaining.runs === 0 },
    {
      label: "GPU-hours this month",
      used: shown(usage.gpu_hours_this_month),
      limit: shown(quota.gpu_hours_per_month),
      left: shown(remaining.gpu_hours_this_month),
      full: read.budget_exhausted,
    },
  ];
}

export function quotaForm(quota: QuotaSet): QuotaForm {
  const text = (value: number | null) => (value === null ? "" : String(value));
  return { gpus: text(quota.gpus), runs: text(quota.runs), gpuHours: text(quota.gpu_hours_per_month), maxPriority: quota.max_priority };
}

/** The body to PUT, or the first field's problem (field -> message). */
export function quotaBody(form: QuotaForm): { body: QuotaSet } | { errors: Partial<Record<keyof QuotaForm, string>> } {
  const errors: Partial<Record<keyof QuotaForm, string>> = {};
  const number = (key: keyof QuotaForm, raw: string, max: number, whole: boolean): number | null => {
    const text = raw.trim();
    if (text === "") return null;
    const value = Number(text);
    if (!Number.isFinite(value) || value < 0 || value > max || (whole && !Number.isInteger(value))) {
      errors[key] = `${whole ? "a whole number" : "a number"} from 0 to ${max}, or empty for no limit`;
      return null;
    }
    return value;
  };
  const body: QuotaSet = {
    gpus: number("gpus", form.gpus, MAX_GPUS, true),
    runs: number("runs", form.runs, MAX_RUNS, true),
    gpu_hours_per_month: number("gpuHours", form.gpuHours, MAX_GPU_HOURS, false),
    max_priority: form.maxPriority,
  };
  return Object.keys(errors).length ? { errors } : { body };
}
