import { startSandbox } from "./index";
(async () => {
  console.log("a");
  const sb = await startSandbox({ port: 0, stateDir: "/tmp/sbcli2" });
  console.log("b");
  await sb.stop();
  console.log("c");
  setTimeout(() => console.log((process as any)._getActiveHandles().map((h: any) => h.constructor.name)), 500);
})();
