import { OciError } from "./errors";

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export const DEFAULT_PLATFORM: Platform = { os: "linux", architecture: "amd64" };

/** Common spellings (uname, Debian) mapped to the OCI/Go names used in indexes. */
const ARCH_ALIASES: Record<string, Platform["architecture"] | [string, string]> = {
  x86_64: "amd64",
  "x86-64": "amd64",
  aarch64: "arm64",
  armhf: ["arm", "v7"],
  armel: ["arm", "v6"],
  i386: "386",
  i686: "386",
};

/** Parses `os/arch[/variant]`, e.g. `linux/arm64/v8`. */
export function parsePlatform(s: string): Platform {
  const parts = s.trim().split("/");
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-z0-9_.-]+$/i.test(p))) {
    throw new OciError("INVALID_OPTION", `platform '${s}': expected os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8`);
  }
  const os = parts[0].toLowerCase();
  let architecture = parts[1].toLowerCase();
  let variant = parts[2]?.toLowerCase();
  const alias = ARCH_ALIASES[architecture];
  if (typeof alias === "string") architecture = alias;
  else if (alias) {
    architecture = alias[0];
    variant = variant ?? alias[1];
  }
  return variant ? { os, architecture, variant } : { os, architecture };
}

export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ""}`;
}

/** arm64's only variant is v8, so "no variant" and "v8" are the same platform. */
function normVariant(p: Platform): string {
  const v = p.variant ?? "";
  return p.architecture === "arm64" && v === "v8" ? "" : v;
}

/**
 * Chooses the index entry for `want`. os and architecture must match; a requested variant
 * must match; without one, an entry without a variant is preferred, else the first one.
 */
export function selectPlatform<T extends { platform?: Platform }>(entries: T[], want: Platform): T | undefined {
  const candidates = entries.filter((e) => e.platform && e.platform.os === want.os && e.platform.architecture === want.architecture);
  if (want.variant) return candidates.find((e) => normVariant(e.platform!) === normVariant(want));
  return candidates.find((e) => normVariant(e.platform!) === "") ?? candidates[0];
}
