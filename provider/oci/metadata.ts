import { ImageConfigFile } from "./image";

/** What an image says about how to run it (image-spec config.md `config`). */
export interface ImageMetadata {
  os?: string;
  architecture?: string;
  variant?: string;
  created?: string;
  entrypoint: string[];
  cmd: string[];
  /** `KEY=value` entries, in image order. */
  env: string[];
  workingDir?: string;
  user?: string;
  stopSignal?: string;
  volumes: string[];
  /** e.g. `80/tcp`. */
  exposedPorts: string[];
  labels: Record<string, string>;
}

export function imageMetadata(c: ImageConfigFile): ImageMetadata {
  const cfg = c.config ?? {};
  return {
    os: c.os,
    architecture: c.architecture,
    variant: c.variant,
    created: c.created,
    entrypoint: cfg.Entrypoint ?? [],
    cmd: cfg.Cmd ?? [],
    env: cfg.Env ?? [],
    workingDir: cfg.WorkingDir || undefined,
    user: cfg.User || undefined,
    stopSignal: cfg.StopSignal || undefined,
    volumes: Object.keys(cfg.Volumes ?? {}).sort(),
    exposedPorts: Object.keys(cfg.ExposedPorts ?? {}).sort(),
    labels: { ...(cfg.Labels ?? {}) },
  };
}
