export * from "./noop";
export * from "./container";
export * from "./template";
export * from "./snapshot";
export * from "./backup";
export * from "./oci-image";
export * from "./lookups";
