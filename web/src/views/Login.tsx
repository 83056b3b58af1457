import { useLocation } from "preact-iso";
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, api } from "../api";
import type { Me } from "../app";
import type { LoginSession } from "../types";
import { codeOf, loginError, safeNext } from "./loginNext";
import "./forms.css";

/** Log in with an API token (pasted), or with the single-use code of a `#code=` link, which logs in by itself. */
export function Login({ onLoggedIn }: { onLoggedIn: (me: Me) => void }) {
  const location = useLocation();
  const [token, setToken] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const used = useRef<string | null>(null);

  const submit = async (body: { token: string } | { code: string }) => {
    setBusy(true);
    setError(null);
    try {
      const session = await api<LoginSession>("POST", "/auth/login", { body });
      onLoggedIn({ id: session.token_id, name: session.name, scope: session.scope });
      // A `#code=` link to another page than /login goes on to that page.
      location.route(safeNext(location.path === "/login" ? location.query.next : location.url), true);
    } catch (exc) {
      const status = exc instanceof ApiError ? exc.status : 0;
      const detail = exc instanceof ApiError ? exc.detail : "The server does not answer.";
      setError(loginError(status, detail, "code" in body));
      setBusy(false);
    }
  };

  useEffect(() => {
    const useCode = () => {
      const code = codeOf(window.location.hash);
      if (!code || code === used.current) return;
      used.current = code;
      // The code is single-use; take it out of the address bar and history before using it.
      history.replaceState(history.state, "", window.location.pathname + window.location.search);
      void submit({ code });
    };
    useCode();
    // A link opened while this page is open changes only the fragment: no new page load.
    window.addEventListener("hashchange", useCode);
    return () => window.removeEventListener("hashchange", useCode);
  }, []);

  return (
    <div class="login-page">
      <form class="login-card" onSubmit={(e) => { e.preventDefault(); if (token.trim()) void submit({ token: token.trim() }); }}>
        <h1><span class="brand-dot" aria-hidden="true" />Spectare</h1>
        <p class="muted">Log in with an API token. <code>spectare token create --scope admin</code> makes one.</p>
        <label class="field">
          <span class="field-label">API token</span>
          <input type="password" name="token" autocomplete="current-password" required autofocus
                 placeholder="spt_…" value={token} onInput={(e) => setToken(e.currentTarget.value)}
                 aria-invalid={error ? "true" : undefined} aria-describedby={error ? "login-error" : undefined} />
        </label>
        {error && <p id="login-error" class="field-error" role="alert">{error}</p>}
        <button type="submit" class="button primary" disabled={busy}>{busy ? "Logging in…" : "Log in"}</button>
      </form>
    </div>
  );
}
