export * from "./noop";
