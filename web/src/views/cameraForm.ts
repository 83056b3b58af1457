// The camera form, pure: its values from a camera, the API body from its values, and the API's errors placed
// beside the fields they are about.
import type { FieldError } from "../api";
import type { Camera, CameraSettings } from "../types";

export type LabelsMode = "default" | "every" | "only";

export interface CameraForm {
  name: string;
  url: string;
  friendly_name: string;
  detect: boolean;
  segment_seconds: string;
  labelsMode: LabelsMode;
  labels: string;
  min_score: string;
  motion_gate: boolean;
  motion_threshold: string;
  keep_days: string;
  keep_event_days: string;
  max_gb: string;
}

export type FormField = keyof CameraForm;

/** The optional numbers: empty means the service's default (null in the API). */
const OPTIONAL_NUMBERS = ["min_score", "motion_threshold", "keep_days", "keep_event_days", "max_gb"] as const;

const text = (value: number | null) => (value === null ? "" : String(value));

export function formOf(camera: Camera | null): CameraForm {
  if (!camera) {
    return { name: "", url: "", friendly_name: "", detect: true, segment_seconds: "10", labelsMode: "default",
             labels: "", min_score: "", motion_gate: true, motion_threshold: "", keep_days: "", keep_event_days: "",
             max_gb: "" };
  }
  return {
    name: camera.name,
    url: camera.url,
    friendly_name: camera.friendly_name,
    detect: camera.detect,
    segment_seconds: String(camera.segment_seconds),
    labelsMode: camera.labels === null ? "default" : camera.labels.length === 0 ? "every" : "only",
    labels: (camera.labels ?? []).join(", "),
    min_score: text(camera.min_score),
    motion_gate: camera.motion_gate,
    motion_threshold: text(camera.motion_threshold),
    keep_days: text(camera.keep_days),
    keep_event_days: text(camera.keep_event_days),
    max_gb: text(camera.max_gb),
  };
}

export interface Parsed {
  settings: CameraSettings | null;
  /** What cannot be sent at all (a number field holding words), by field. */
  errors: Partial<Record<FormField, string>>;
}

/** The API body (every setting: PUT replaces them all). Ranges are the API's to check; only numbers are read here. */
export function settingsOf(form: CameraForm): Parsed {
  const errors: Partial<Record<FormField, string>> = {};
  const number = (field: FormField, value: string): number | null => {
    if (value.trim() === "") return null;
    const n = Number(value.trim());
    if (!Number.isFinite(n)) {
      errors[field] = "must be a number";
      return null;
    }
    return n;
  };
  const segment = number("segment_seconds", form.segment_seconds);
  if (segment === null && !errors.segment_seconds) errors.segment_seconds = "required";
  else if (segment !== null && !Number.isInteger(segment)) errors.segment_seconds = "must be a whole number of seconds";
  const optional = Object.fromEntries(OPTIONAL_NUMBERS.map((f) => [f, number(f, form[f])])) as
    Record<(typeof OPTIONAL_NUMBERS)[number], number | null>;
  const labels = form.labelsMode === "default" ? null : form.labelsMode === "every" ? [] : labelList(form.labels);
  if (form.labelsMode === "only" && labels !== null && labels.length === 0) errors.labels = "name at least one label";
  if (Object.keys(errors).length) return { settings: null, errors };
  return {
    settings: {
      url: form.url.trim(),
      friendly_name: form.friendly_name.trim(),
      detect: form.detect,
      segment_seconds: segment as number,
      labels,
      motion_gate: form.motion_gate,
      ...optional,
    },
    errors,
  };
}

export const labelList = (text: string) => text.split(",").map((l) => l.trim()).filter(Boolean);

/** The form field an API error is about: `loc` "body.name" (or ["body", "labels", 0]) -> "name" / "labels". */
export function fieldOfLoc(loc: FieldError["loc"] | string): FormField | null {
  const parts = (typeof loc === "string" ? loc.split(".") : loc.map(String)).filter((p) => p !== "body");
  const field = parts[0];
  if (!field) return null;
  const known: FormField[] = ["name", "url", "friendly_name", "detect", "segment_seconds", "labels", "min_score",
                              "motion_gate", "motion_threshold", "keep_days", "keep_event_days", "max_gb"];
  return (known as string[]).includes(field) ? (field as FormField) : null;
}

export interface PlacedErrors {
  fields: Partial<Record<FormField, string>>;
  /** What belongs to no field (or the answer's `detail` when nothing was placed). */
  top: string | null;
}

/** The API's refusal: each `errors` entry beside its field; the rest, or the `detail`, at the top. */
export function placeErrors(status: number, detail: string, errors: FieldError[]): PlacedErrors {
  const fields: Partial<Record<FormField, string>> = {};
  const unplaced: string[] = [];
  for (const error of errors) {
    const field = fieldOfLoc(error.loc as FieldError["loc"] | string);
    if (field) fields[field] = fields[field] ? `${fields[field]}; ${error.msg}` : error.msg;
    else unplaced.push(error.msg);
  }
  if (status === 409) fields.name = detail; // a camera with that name exists
  const placed = Object.keys(fields).length > 0;
  return { fields, top: unplaced.length ? unplaced.join("; ") : placed ? null : detail };
}
