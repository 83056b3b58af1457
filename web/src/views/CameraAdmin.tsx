// Placeholder while this view is built.
export function CameraAdmin() {
  return <section><h1>CameraAdmin</h1></section>;
}
