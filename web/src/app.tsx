import { LocationProvider, Route, Router, useLocation } from "preact-iso";
import { useEffect, useState } from "preact/hooks";
import { api, setUnauthorizedHandler } from "./api";
import { Layout } from "./components/Layout";
import { CameraAdmin } from "./views/CameraAdmin";
import { CameraView } from "./views/CameraView";
import { Explore } from "./views/Explore";
import { Grid } from "./views/Grid";
import { Login } from "./views/Login";
import { NotFound } from "./views/NotFound";
import { System } from "./views/System";

/** Who is logged in: the token behind the session cookie (GET /tokens/me). */
export interface Me {
  id: string;
  name: string;
  scope: "read" | "admin";
}

export function App() {
  return (
    <LocationProvider>
      <Session />
    </LocationProvider>
  );
}

function Session() {
  const location = useLocation();
  const [me, setMe] = useState<Me | null | undefined>(undefined); // undefined: not asked yet
  // A `#code=` link (what `spectare up` prints) logs in wherever it points.
  const onLogin = location.path === "/login" || window.location.hash.startsWith("#code=");

  useEffect(() => {
    setUnauthorizedHandler(() => {
      setMe(null);
      const here = window.location.pathname + window.location.search;
      if (window.location.pathname !== "/login") location.route(`/login?next=${encodeURIComponent(here)}`, true);
    });
  }, []);

  useEffect(() => {
    if (onLogin) return;
    api<Me>("GET", "/tokens/me").then(setMe, () => setMe(null));
  }, [onLogin]);

  if (onLogin) return <Login onLoggedIn={setMe} />;
  if (me === undefined) return <div class="loading">Loading…</div>;
  if (me === null) return <div class="loading">Signing in…</div>;
  return (
    <Layout me={me} onLoggedOut={() => setMe(null)}>
      <Router>
        <Route path="/" component={Grid} />
        <Route path="/cameras/:name" component={CameraView} />
        <Route path="/explore" component={Explore} />
        <Route path="/settings/cameras" component={CameraAdmin} />
        <Route path="/settings/cameras/:name" component={CameraAdmin} />
        <Route path="/system" component={System} />
        <Route default component={NotFound} />
      </Router>
    </Layout>
  );
}
