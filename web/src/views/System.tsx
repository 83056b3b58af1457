// Placeholder while this view is built.
export function System() {
  return <section><h1>System</h1></section>;
}
