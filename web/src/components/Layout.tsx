import type { ComponentChildren } from "preact";
import { useLocation } from "preact-iso";
import { api } from "../api";
import type { Me } from "../app";

const NAV: [string, string][] = [
  ["/", "Live"],
  ["/explore", "Explore"],
  ["/settings/cameras", "Cameras"],
  ["/system", "System"],
];

export function Layout({ me, onLoggedOut, children }: { me: Me; onLoggedOut: () => void; children: ComponentChildren }) {
  const location = useLocation();
  const active = (href: string) => (href === "/" ? location.path === "/" || location.path.startsWith("/cameras/") : location.path.startsWith(href));
  const logout = async () => {
    await api("POST", "/auth/logout").catch(() => undefined);
    onLoggedOut();
    location.route("/login");
  };
  return (
    <div class="layout">
      <header class="topbar">
        <a class="brand" href="/">Spectare</a>
        <nav>
          {NAV.map(([href, label]) => (
            <a href={href} class={active(href) ? "active" : ""}>
              {label}
            </a>
          ))}
        </nav>
        <span class="who" title={`token ${me.id}, scope ${me.scope}`}>
          {me.name}
        </span>
        <button type="button" class="link" onClick={logout}>
          Log out
        </button>
      </header>
      <main>{children}</main>
    </div>
  );
}
