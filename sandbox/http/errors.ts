/**
 * Errors a handler raises, mapped to PVE's envelope (BEHAVIOR.md §1.2): a plain `die
 * "text\n"` is a 500, parameter errors are 400 `Parameter verification failed.` with an
 * `errors` map, permission errors 403. Messages always carry PVE's trailing newline.
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly errors?: Record<string, string>,
  ) {
    super(message.endsWith("\n") ? message : `${message}\n`);
  }
}

/** `die "text\n"` inside a handler → 500 with that text. */
export function fail(message: string): ApiError {
  return new ApiError(500, message);
}

/** `raise_param_exc` → 400 with the errors map. */
export function paramError(errors: Record<string, string>): ApiError {
  return new ApiError(400, "Parameter verification failed.", errors);
}

/** `raise_perm_exc` → 403 `Permission check failed (<path>, <privs>)` or the bare text. */
export function permError(detail?: string): ApiError {
  return new ApiError(403, detail ? `Permission check failed (${detail})` : "Permission check failed");
}

/** 401 before a handler runs: empty body, reason only (BEHAVIOR.md §2.3). */
export class AuthError extends Error {
  constructor(readonly reason: string) {
    super(reason);
  }
}
