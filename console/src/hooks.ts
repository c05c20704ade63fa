// Data loading for pages: a call's result, its error and a reload, optionally refreshed on an interval while the tab
// is visible. Changing the query clears the old answer at once, so a page never shows one query's rows under another's
// filters.
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { RpcError } from "./api/grpc-web";

export interface Loaded<T> {
  data: T | undefined;
  error: RpcError | undefined;
  loading: boolean;
  reload(): void;
}

export function useLoad<T>(load: (signal: AbortSignal) => Promise<T>, deps: unknown[], refreshMs = 0): Loaded<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<RpcError | undefined>(undefined);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  const current = useRef<AbortController | null>(null);
  const shown = useRef<unknown>(undefined);
  const run = useCallback(load, deps);

  useEffect(() => {
    const controller = new AbortController();
    current.current?.abort();
    current.current = controller;
    // Another query (new filters, another object) shows nothing until its answer; a refresh keeps what is shown.
    if (shown.current !== run) {
      shown.current = run;
      setData(undefined);
      setError(undefined);
    }
    setLoading(true);
    run(controller.signal).then(
      (value) => {
        if (controller.signal.aborted) return;
        setData(value);
        setError(undefined);
        setLoading(false);
      },
      (err: unknown) => {
        if (controller.signal.aborted) return;
        setError(err instanceof RpcError ? err : new RpcError(2, String(err)));
        setLoading(false);
      },
    );
    return () => controller.abort();
  }, [run, tick]);

  useEffect(() => {
    if (refreshMs <= 0) return;
    const timer = setInterval(() => {
      if (document.visibilityState === "visible") setTick((t) => t + 1);
    }, refreshMs);
    return () => clearInterval(timer);
  }, [refreshMs]);

  return { data, error, loading, reload: () => setTick((t) => t + 1) };
}
