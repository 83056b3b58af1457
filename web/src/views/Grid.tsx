// Placeholder while this view is built.
export function Grid() {
  return <section><h1>Grid</h1></section>;
}
