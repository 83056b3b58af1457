import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError } from "./api";

export interface Polled<T> {
  data: T | null;
  /** The last failure, cleared by the next success. */
  error: string | null;
  loading: boolean;
}

/** Calls `load` now and `everyMs` after each answer (never two at once; paused while the tab is hidden). */
export function usePoll<T>(load: (signal: AbortSignal) => Promise<T>, everyMs: number, deps: unknown[] = []): Polled<T> {
  const [state, setState] = useState<Polled<T>>({ data: null, error: null, loading: true });
  const loadRef = useRef(load);
  loadRef.current = load;

  useEffect(() => {
    const abort = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const tick = async () => {
      if (document.hidden) {
        timer = setTimeout(tick, everyMs);
        return;
      }
      try {
        const data = await loadRef.current(abort.signal);
        if (!abort.signal.aborted) setState({ data, error: null, loading: false });
      } catch (exc) {
        if (abort.signal.aborted) return;
        const error = exc instanceof ApiError ? exc.detail : String(exc);
        setState((was) => ({ data: was.data, error, loading: false }));
      }
      if (!abort.signal.aborted) timer = setTimeout(tick, everyMs);
    };
    setState((was) => ({ ...was, loading: true }));
    void tick();
    return () => {
      abort.abort();
      clearTimeout(timer);
    };
  }, [everyMs, ...deps]);

  return state;
}
