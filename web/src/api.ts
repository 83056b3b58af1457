// The JSON API, from the page's own origin with the session cookie (POST /auth/login sets it).
// Every call goes through `api`, so a 401 anywhere sends the user back to the login page.

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
    readonly errors: FieldError[] = [],
  ) {
    super(detail);
  }
}

/** One entry of a 422's `errors`: `loc` names the field (e.g. ["body", "name"]), `msg` what is wrong. */
export interface FieldError {
  loc: (string | number)[];
  msg: string;
}

type Unauthorized = () => void;
let onUnauthorized: Unauthorized = () => {};

/** The app registers what a 401 does (go to the login page, remembering where the user was). */
export function setUnauthorizedHandler(handler: Unauthorized): void {
  onUnauthorized = handler;
}

export type Query = Record<string, string | number | boolean | null | undefined>;

export function withQuery(path: string, query?: Query): string {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null) params.set(key, String(value));
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

/** A request to the API; JSON in and out. Throws ApiError with the API's own `detail` on any non-2xx. */
export async function api<T>(method: string, path: string, options: { query?: Query; body?: unknown; signal?: AbortSignal } = {}): Promise<T> {
  const headers: Record<string, string> = { accept: "application/json" };
  let body: string | undefined;
  if (options.body !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(options.body);
  }
  const answer = await fetch(withQuery(path, options.query), {
    method,
    headers,
    body,
    credentials: "same-origin",
    signal: options.signal,
  });
  if (answer.status === 401 && path !== "/auth/login") onUnauthorized();
  if (!answer.ok) throw await errorOf(answer);
  if (answer.status === 204) return undefined as T;
  return (await answer.json()) as T;
}

async function errorOf(answer: Response): Promise<ApiError> {
  try {
    const problem = (await answer.json()) as { detail?: unknown; errors?: FieldError[] };
    const detail = typeof problem.detail === "string" ? problem.detail : `${answer.status} ${answer.statusText}`;
    return new ApiError(answer.status, detail, problem.errors ?? []);
  } catch {
    return new ApiError(answer.status, `${answer.status} ${answer.statusText}`);
  }
}

export const cameraPath = (name: string) => `/cameras/byname/${encodeURIComponent(name)}`;
