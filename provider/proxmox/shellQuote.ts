/**
 * Shell quoting exactly as PVE stores an OCI app container's `entrypoint`: pve-common's
 * `PVE::Cmd::to_string` quotes each word on its own with Perl's
 * `String::ShellQuote::shell_quote` and joins them with spaces (BEHAVIOR.md 7). Shared by
 * the OciImage handler (its `entrypoint` output must equal what PVE writes, or the
 * Container shows a diff forever) and the sandbox (which writes it like PVE), the way the
 * property-string codec is shared.
 *
 * String::ShellQuote rules for a single word: an empty word is `''`; a word is quoted when
 * it contains `=` (as the first word of a command it would be an assignment — and PVE
 * quotes every word as a first word) or any character outside `[A-Za-z0-9_!%+,\-./:=@^]`;
 * quoting wraps in `'…'` with each `'` as `'\''`, two or more in a row as `'"''"'`, and drops
 * an empty `''` at either end.
 */

const SAFE = /^[A-Za-z0-9_!%+,\-./:=@^]+$/;

export function shellQuote(word: string): string {
  if (word === "") return "''";
  // Perl's shell_quote drops NUL bytes (with a warning); PVE refuses control characters earlier.
  const w = word.replace(/\0/g, "");
  if (SAFE.test(w) && !w.includes("=")) return w;
  let q = w.replace(/'/g, "'\\''");
  q = q.replace(/(?:'\\''){2,}/g, (run) => `'"${"'".repeat(run.length / 4)}"'`);
  q = `'${q}'`;
  return q.replace(/^''/, "").replace(/''$/, "");
}

/** Words → one string, as PVE's `to_string` joins them. */
export function shellJoin(words: string[]): string {
  return words.map(shellQuote).join(" ");
}
