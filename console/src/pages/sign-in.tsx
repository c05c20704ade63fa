// Sign in with an API key: checked with WhoAmI before it is kept (in this tab's sessionStorage only).
import { useState } from "preact/hooks";
import type { RpcError } from "../api/grpc-web";
import { ErrorNote } from "../components/common";

export function SignIn({ onSignIn, notice }: { onSignIn(key: string): Promise<void>; notice?: string | undefined }) {
  const [key, setKey] = useState("");
  const [error, setError] = useState<RpcError | undefined>(undefined);
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await onSignIn(key.trim());
    } catch (err) {
      setError(err as RpcError);
    } finally {
      setBusy(false);
    }
  };

  return (
    <main class="sign-in">
      <form onSubmit={(e) => void submit(e)} autocomplete="off">
        <h1>Dispatcher console</h1>
        <p>Sign in with an API key (the quick start prints one as DISPATCHER_CLIENT_TOKEN). You see what the key may see.</p>
        {notice ? <p class="notice">{notice}</p> : null}
        <label for="api-key">API key</label>
        <input id="api-key" name="api-key" type="password" value={key} onInput={(e) => setKey((e.target as HTMLInputElement).value)} required autofocus spellcheck={false} />
        <button type="submit" disabled={busy || key.trim() === ""}>
          {busy ? "Checking…" : "Sign in"}
        </button>
        <ErrorNote error={error} />
        <p class="hint">The key stays in this browser tab (sessionStorage) and goes only to the dispatcher's gRPC-Web bridge.</p>
      </form>
    </main>
  );
}
