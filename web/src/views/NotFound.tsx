export function NotFound() {
  return (
    <section class="empty">
      <h1>Not found</h1>
      <p>
        No page here. <a href="/">Back to the live view</a>.
      </p>
    </section>
  );
}
