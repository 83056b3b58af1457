// Placeholder while this view is built.
export function CameraView() {
  return <section><h1>CameraView</h1></section>;
}
