/**
 * One error type for the OCI library so callers (the OciImage resource, the CLI) can tell
 * "the image or its source is wrong" from bugs, and show `message` to users as is.
 * Messages never contain credentials: they are built from registry names, references,
 * user names and digests only.
 */
export type OciErrorCode =
  | "INVALID_REFERENCE"
  | "INVALID_SOURCE"
  | "INVALID_OPTION"
  | "AUTH_REQUIRED"
  | "AUTH_FAILED"
  | "ACCESS_DENIED"
  | "NOT_FOUND"
  | "REGISTRY_ERROR"
  | "TRANSPORT"
  | "DIGEST_MISMATCH"
  | "UNSUPPORTED"
  | "PLATFORM_NOT_FOUND"
  | "HOSTILE_LAYER"
  | "LIMIT_EXCEEDED"
  | "MISSING_TOOL"
  | "BUNDLE";

export class OciError extends Error {
  readonly code: OciErrorCode;
  constructor(code: OciErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "OciError";
    this.code = code;
  }
}
