import { useEffect, useRef, useState } from "preact/hooks";
import { cameraPath } from "../api";

type Shown = "loading" | "picture" | "none";

/** The camera's latest keyframe, refreshed about every `everyMs` while the element is on screen and the tab is
 * visible. Each new picture loads in an Image of its own and replaces the shown one only once it has loaded and
 * decoded, so the tile never flashes; a failed load (404: no recent keyframe) shows "no picture". */
export function CameraStill({ name, title, everyMs = 1000 }: { name: string; title: string; everyMs?: number }) {
  const frame = useRef<HTMLDivElement>(null);
  const [shown, setShown] = useState<Shown>("loading");

  useEffect(() => {
    const box = frame.current;
    if (!box) return;
    let visible = false;
    let stopped = false;
    let busy = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let n = 0;

    const load = () => {
      timer = undefined;
      if (stopped || busy || !visible || document.hidden) return;
      busy = true;
      const next = new Image();
      next.alt = `latest picture of ${title}`;
      next.className = "still-img";
      next.src = `${cameraPath(name)}/snapshot.jpg?n=${Date.now().toString(36)}${(n++).toString(36)}`;
      next.decode().then(
        () => {
          if (stopped) return;
          box.querySelector("img")?.replaceWith(next) ?? box.prepend(next);
          setShown("picture");
        },
        () => {
          if (stopped) return;
          box.querySelector("img")?.remove();
          setShown("none");
        },
      ).finally(() => {
        busy = false;
        schedule();
      });
    };
    const schedule = () => {
      if (!stopped && visible && !document.hidden && timer === undefined) timer = setTimeout(load, everyMs);
    };
    const observer = new IntersectionObserver((entries) => {
      visible = entries.some((e) => e.isIntersecting);
      if (visible && !busy && timer === undefined) load();
    }, { rootMargin: "100px" });
    observer.observe(box);
    const onVisibility = () => { if (!document.hidden && !busy && timer === undefined) load(); };
    document.addEventListener("visibilitychange", onVisibility);
    return () => {
      stopped = true;
      clearTimeout(timer);
      observer.disconnect();
      document.removeEventListener("visibilitychange", onVisibility);
    };
  }, [name, everyMs]);

  return (
    <div class={`still still-${shown}`}>
      {/* The pictures go in here by hand (never re-rendered by Preact), the note beside them. */}
      <div class="still-pic" ref={frame} />
      {shown === "none" && <span class="still-note">no picture</span>}
      {shown === "loading" && <span class="still-note">loading…</span>}
    </div>
  );
}
