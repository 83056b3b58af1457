// Placeholder while this view is built.
export function Explore() {
  return <section><h1>Explore</h1></section>;
}
