// Placeholder while this view is built.
import type { Me } from "../app";
export function Login(_props: { onLoggedIn: (me: Me) => void }) {
  return <section><h1>Login</h1></section>;
}
