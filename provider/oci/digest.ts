import { createHash, Hash } from "node:crypto";
import { OciError } from "./errors";

const DIGEST_RE = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

export function isDigest(s: string): boolean {
  return DIGEST_RE.test(s);
}

/** Checks the digest syntax; `what` names the field for the error message. */
export function parseDigest(s: string, what: string): { algorithm: "sha256" | "sha512"; hex: string } {
  if (!DIGEST_RE.test(s)) {
    throw new OciError("INVALID_REFERENCE", `${what}: '${s}' is not a valid digest (expected sha256:<64 hex> or sha512:<128 hex>)`);
  }
  const [algorithm, hex] = s.split(":") as ["sha256" | "sha512", string];
  return { algorithm, hex };
}

export function digestOf(data: Buffer | string): string {
  return "sha256:" + createHash("sha256").update(data).digest("hex");
}

/** A running hash for verifying a stream against an expected digest. */
export class DigestVerifier {
  private readonly hash: Hash;
  private readonly algorithm: string;
  bytes = 0;
  constructor(readonly expected: string) {
    this.algorithm = parseDigest(expected, "digest").algorithm;
    this.hash = createHash(this.algorithm);
  }
  update(chunk: Buffer): void {
    this.bytes += chunk.length;
    this.hash.update(chunk);
  }
  /** The actual digest; throws DIGEST_MISMATCH naming `what` if it differs. */
  verify(what: string): string {
    const actual = `${this.algorithm}:${this.hash.digest("hex")}`;
    if (actual !== this.expected) {
      throw new OciError("DIGEST_MISMATCH", `${what}: content digest ${actual} does not match the expected ${this.expected}`);
    }
    return actual;
  }
}
