import koffi from "koffi";

const loaded = new Map<string, unknown>();

/**
 * A libc function through koffi, loaded once per signature; null off Linux or when libc lacks
 * it, so the caller can fall back to what Node offers.
 */
export function libcFunction<T>(signature: string): T | null {
  if (!loaded.has(signature)) {
    let fn: unknown = null;
    if (process.platform === "linux") {
      try {
        fn = koffi.load("libc.so.6").func(signature);
      } catch {
        fn = null;
      }
    }
    loaded.set(signature, fn);
  }
  return loaded.get(signature) as T | null;
}
