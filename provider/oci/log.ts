import { getLogger, Logger } from "../logging";

export type { Logger };

/** The library's logger: the caller's, or the shared one tagged `component: "oci"`. */
export function ociLogger(logger?: Logger): Logger {
  return logger ?? getLogger().child({ component: "oci" });
}
