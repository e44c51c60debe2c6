import { Worker, type ResourceLimits } from "node:worker_threads";

/**
 * A worker thread running a TypeScript module of this project. The worker registers tsx itself,
 * so this works however the process was started (`node --import tsx`, mocha, or the `veritrail`
 * launcher, which registers tsx at run time where a worker would not inherit it).
 */
export function startTsWorker(module: URL, resourceLimits?: ResourceLimits): Worker {
  const tsx = import.meta.resolve("tsx/esm/api");
  return new Worker(
    `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(module.href)}); });`,
    { eval: true, ...(resourceLimits ? { resourceLimits } : {}) },
  );
}
