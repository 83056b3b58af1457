// Where the login page goes once logged in: `next` when it is a path of this site, else the live grid.

export function safeNext(next: string | null | undefined): string {
  if (!next || !next.startsWith("/") || next.startsWith("//") || next.startsWith("/\\")) return "/";
  if (next === "/login" || next.startsWith("/login?") || next.startsWith("/login#")) return "/";
  // A control character or a backslash could make a browser read it as another origin.
  if (/[\u0000-\u001f\\]/.test(next)) return "/";
  return next;
}

/** The single-use login code in a URL fragment `#code=<code>` (what `spectare up` prints), or null. */
export function codeOf(hash: string): string | null {
  const params = new URLSearchParams(hash.replace(/^#/, ""));
  const code = params.get("code");
  return code && code.trim() ? code.trim() : null;
}

/** The login form's error for an API answer: a person's words for the usual ones. */
export function loginError(status: number, detail: string, withCode: boolean): string {
  if (status === 401) {
    // The API says why a code failed (used, expired, its token revoked) and what to do instead.
    return withCode ? detail || "That login link has been used or has expired." : "That token is not valid (revoked or mistyped)";
  }
  if (status === 403) return "This page may not log in to this server (another origin).";
  if (status === 422) return withCode ? "That login link is not readable." : "That is not a token: tokens look like spt_…";
  if (status === 429) return "Too many attempts; wait a minute and try again.";
  return detail || `The server answered ${status}.`;
}
