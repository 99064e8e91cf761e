export * from "./noop";
export * from "./container";
