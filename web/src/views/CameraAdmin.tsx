import type { ComponentChildren } from "preact";
import { useLocation, useRoute } from "preact-iso";
import { useEffect, useState } from "preact/hooks";
import { ApiError, api, cameraPath } from "../api";
import type { Me } from "../app";
import type { Camera, Stats } from "../types";
import { usePoll } from "../usePoll";
import { type CameraForm, type FormField, type PlacedErrors, formOf, placeErrors, settingsOf } from "./cameraForm";
import { STATE_LABELS, tilesOf } from "./gridTiles";
import "./admin.css";
import "./forms.css";

/** Cameras: the list (with why a camera does not record), adding one, and editing or removing one. */
export function CameraAdmin() {
  const { params } = useRoute();
  const [me, setMe] = useState<Me | null>(null);
  useEffect(() => {
    api<Me>("GET", "/tokens/me").then(setMe, () => setMe(null));
  }, []);
  const admin = me?.scope === "admin";
  return params.name ? <EditCamera name={params.name} admin={admin} /> : <CameraList admin={admin} />;
}

function CameraList({ admin }: { admin: boolean }) {
  const location = useLocation();
  const adding = location.query.add === "1" && admin;
  const [cameras, setCameras] = useState<Camera[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const stats = usePoll((signal) => api<Stats>("GET", "/stats", { signal }), 5_000);
  const reload = () => api<Camera[]>("GET", "/cameras").then((c) => { setCameras(c); setError(null); },
                                                             (e) => setError(e instanceof ApiError ? e.detail : String(e)));
  useEffect(() => { void reload(); }, []);
  const states = new Map(tilesOf(cameras ?? [], stats.data).map((t) => [t.name, t]));
  const added = location.query.added;

  return (
    <div class="admin-page">
      <div class="toolbar">
        <h1>Cameras</h1>
        {admin && !adding && <a class="button primary" href="/settings/cameras?add=1">Add camera</a>}
      </div>
      {!admin && <p class="note">Your token has read scope: you can see the cameras' settings, not change them.</p>}
      {added && <p class="ok-box" role="status">Added {added}. An ingest worker starts recording it within seconds.</p>}
      {adding && (
        <section class="panel">
          <h2>Add a camera</h2>
          <CameraFields camera={null} admin={admin} onCancel={() => location.route("/settings/cameras")}
                        onSaved={(c) => { void reload(); location.route(`/settings/cameras?added=${encodeURIComponent(c.name)}`); }} />
        </section>
      )}
      {error && <p class="error-box" role="alert">{error}</p>}
      {cameras && cameras.length === 0 && !adding && <p class="empty">No cameras yet.{admin && " Add one to start recording."}</p>}
      {cameras && cameras.length > 0 && (
        <section class="panel table-panel">
          <table class="table camera-table stack">
            <thead>
              <tr><th>Camera</th><th>State</th><th class="hide-narrow">URL</th><th class="hide-narrow">Detection</th><th class="hide-narrow">Chunk length</th></tr>
            </thead>
            <tbody>
              {cameras.map((camera) => {
                const tile = states.get(camera.name);
                return (
                  <tr>
                    <td>
                      <a href={`/settings/cameras/${encodeURIComponent(camera.name)}`} class="strong">{camera.friendly_name || camera.name}</a>
                      {camera.friendly_name && <div class="muted small">{camera.name}</div>}
                    </td>
                    <td data-label="State">
                      <span class={`badge badge-${tile?.state ?? "unknown"}`}>{STATE_LABELS[tile?.state ?? "unknown"]}</span>
                      {tile?.error && <div class="error-text small">{tile.error}</div>}
                    </td>
                    <td class="hide-narrow mono small url-cell">{camera.url}</td>
                    <td class="hide-narrow">{camera.detect ? (camera.labels?.length ? camera.labels.join(", ") : "on") : "off"}</td>
                    <td class="hide-narrow">{camera.segment_seconds} s</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </section>
      )}
    </div>
  );
}

function EditCamera({ name, admin }: { name: string; admin: boolean }) {
  const location = useLocation();
  const [camera, setCamera] = useState<Camera | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [saved, setSaved] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const [removeError, setRemoveError] = useState<string | null>(null);

  useEffect(() => {
    setCamera(null);
    api<Camera>("GET", cameraPath(name)).then(setCamera, (e) => setError(e instanceof ApiError ? e.detail : String(e)));
  }, [name]);

  const remove = async () => {
    try {
      await api("DELETE", cameraPath(name));
      location.route("/settings/cameras");
    } catch (exc) {
      setRemoveError(exc instanceof ApiError ? exc.detail : String(exc));
    }
  };

  return (
    <div class="admin-page">
      <p class="crumbs"><a href="/settings/cameras">Cameras</a> / {name}</p>
      <div class="toolbar">
        <h1>{camera?.friendly_name || name}</h1>
        <a class="button" href={`/cameras/${encodeURIComponent(name)}`}>Watch</a>
      </div>
      {error && <p class="error-box" role="alert">{error}</p>}
      {!admin && camera && <p class="note">Your token has read scope: these settings are read-only.</p>}
      {saved && <p class="ok-box" role="status">Saved. Detection and retention changes apply without interrupting the recording.</p>}
      {camera && (
        <section class="panel">
          <CameraFields camera={camera} admin={admin} onSaved={(c) => { setCamera(c); setSaved(true); }} onChange={() => setSaved(false)} />
        </section>
      )}
      {camera && admin && (
        <section class="panel danger-zone">
          <h2>Remove this camera</h2>
          <p class="muted">Recording stops; footage already recorded stays until retention removes it.</p>
          {!confirming ? (
            <button type="button" class="button danger" onClick={() => setConfirming(true)}>Remove camera</button>
          ) : (
            <div class="confirm" role="alertdialog" aria-label={`Remove ${name}?`}>
              <span>Remove <strong>{name}</strong>?</span>
              <button type="button" class="button danger" onClick={() => void remove()}>Yes, remove</button>
              <button type="button" class="button" onClick={() => setConfirming(false)}>Cancel</button>
            </div>
          )}
          {removeError && <p class="error-box" role="alert">{removeError}</p>}
        </section>
      )}
    </div>
  );
}

interface FieldsProps {
  camera: Camera | null;
  admin: boolean;
  onSaved: (camera: Camera) => void;
  onCancel?: () => void;
  onChange?: () => void;
}

/** The form of a camera's settings: adds one (`camera` null) or replaces an existing one's. */
function CameraFields({ camera, admin, onSaved, onCancel, onChange }: FieldsProps) {
  const [form, setForm] = useState<CameraForm>(formOf(camera));
  const [problems, setProblems] = useState<PlacedErrors>({ fields: {}, top: null });
  const [busy, setBusy] = useState(false);
  const creating = camera === null;
  const readOnly = !admin;

  const set = <K extends FormField>(field: K, value: CameraForm[K]) => {
    setForm((f) => ({ ...f, [field]: value }));
    onChange?.();
  };

  const submit = async (e: Event) => {
    e.preventDefault();
    const parsed = settingsOf(form);
    if (!parsed.settings) {
      setProblems({ fields: parsed.errors, top: "Some fields need fixing." });
      return;
    }
    setBusy(true);
    try {
      const saved = creating
        ? await api<Camera>("POST", "/cameras", { body: { name: form.name.trim(), ...parsed.settings } })
        : await api<Camera>("PUT", cameraPath(camera.name), { body: parsed.settings });
      setProblems({ fields: {}, top: null });
      setForm(formOf(saved));
      onSaved(saved);
    } catch (exc) {
      setProblems(exc instanceof ApiError ? placeErrors(exc.status, exc.detail, exc.errors) : { fields: {}, top: String(exc) });
    }
    setBusy(false);
  };

  const err = (field: FormField) => problems.fields[field];
  const text = (field: FormField, label: string, props: Record<string, unknown> = {}, hint?: ComponentChildren) => (
    <Field field={field} label={label} error={err(field)} hint={hint}>
      <input id={`cam-${field}`} name={field} value={form[field] as string} readOnly={readOnly}
             aria-invalid={err(field) ? "true" : undefined} aria-describedby={`cam-${field}-note`}
             onInput={(e) => set(field, e.currentTarget.value)} {...props} />
    </Field>
  );
  const check = (field: "detect" | "motion_gate", label: string, hint: string) => (
    <div class="field field-check">
      <label>
        <input type="checkbox" name={field} checked={form[field]} disabled={readOnly}
               onChange={(e) => set(field, e.currentTarget.checked)} />
        <span>{label}</span>
      </label>
      <span class="field-hint">{hint}</span>
      {err(field) && <span class="field-error">{err(field)}</span>}
    </div>
  );
  const number = (field: FormField, label: string, hint: string, step = "any") =>
    text(field, label, { type: "number", step, inputMode: "decimal", placeholder: "default" }, hint);

  return (
    <form class="camera-form" onSubmit={submit} noValidate>
      {problems.top && <p class="error-box" role="alert">{problems.top}</p>}
      <fieldset disabled={busy}>
        <legend>Stream</legend>
        {creating
          ? text("name", "Name", { required: true, autocomplete: "off", spellcheck: false, placeholder: "porch" },
                 "Lower-case letters, digits, _ and -; it names the camera in URLs and cannot change.")
          : null}
        {text("friendly_name", "Friendly name", { placeholder: "Front porch" }, "Shown in the page; may be anything.")}
        {text("url", "Stream URL", { required: true, autocomplete: "off", spellcheck: false, placeholder: "rtsp://user:password@192.168.1.20/stream1", class: "mono" },
              creating ? "RTSP (or RTMP, HTTP, file) URL, with the camera's user and password if it needs them."
                       : "The password is shown as ***. Saving the URL with *** keeps the stored password; type a new one to change it.")}
        {number("segment_seconds", "Chunk length (s)", "Footage is stored in chunks of this many seconds (1 to 3600).", "1")}
      </fieldset>
      <fieldset disabled={busy}>
        <legend>Detection</legend>
        {check("detect", "Detect objects", "Run object detection on this camera's keyframes.")}
        <Field field="labels" label="Labels" error={err("labels")} hint="Comma-separated, e.g. person, car, dog.">
          <div class="labels-row">
            <select id="cam-labelsMode" aria-label="Which labels" value={form.labelsMode} disabled={readOnly}
                    onChange={(e) => set("labelsMode", e.currentTarget.value as CameraForm["labelsMode"])}>
              <option value="default">The detector's default list</option>
              <option value="every">Every label</option>
              <option value="only">Only these</option>
            </select>
            {form.labelsMode === "only" && (
              <input id="cam-labels" name="labels" value={form.labels} readOnly={readOnly} placeholder="person, car"
                     aria-label="Labels to report" aria-invalid={err("labels") ? "true" : undefined}
                     onInput={(e) => set("labels", e.currentTarget.value)} />
            )}
          </div>
        </Field>
        {number("min_score", "Minimum score", "0.01 to 1; empty: the detector's default.", "0.01")}
        {check("motion_gate", "Motion gate", "Detect only on keyframes that differ from the one before.")}
        {number("motion_threshold", "Motion threshold", "Share of the picture that must change (0 to 1); empty: default.", "0.01")}
      </fieldset>
      <fieldset disabled={busy}>
        <legend>Retention</legend>
        {number("keep_days", "Keep footage (days)", "Plain footage; empty: the indexer's default.")}
        {number("keep_event_days", "Keep detections (days)", "Footage around detections, and the detections; empty: default.")}
        {number("max_gb", "Storage cap (GB)", "Most footage this camera may keep; empty: the indexer's default.")}
      </fieldset>
      {admin && (
        <div class="form-buttons">
          <button type="submit" class="button primary" disabled={busy}>{busy ? "Saving…" : creating ? "Add camera" : "Save"}</button>
          {onCancel && <button type="button" class="button" onClick={onCancel}>Cancel</button>}
        </div>
      )}
    </form>
  );
}

function Field({ field, label, error, hint, children }: { field: FormField; label: string; error?: string; hint?: ComponentChildren; children: ComponentChildren }) {
  return (
    <div class={`field${error ? " has-error" : ""}`} data-field={field}>
      <label class="field-label" for={`cam-${field === "labels" ? "labelsMode" : field}`}>{label}</label>
      {children}
      <span id={`cam-${field}-note`} class="field-notes">
        {error && <span class="field-error" role="alert">{error}</span>}
        {hint && <span class="field-hint">{hint}</span>}
      </span>
    </div>
  );
}
