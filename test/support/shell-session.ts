/**
 * Runs shell commands taken from the documentation the way a reader runs them: one after the
 * other in one bash (so `export`s carry over), from the repository's root, with the PATH a user
 * has (no node_modules/.bin: `npx veritrail` runs from the system's Node) and a fresh npx cache.
 * Each command's output (stdout and stderr) and exit code are kept.
 *
 * What a reader would change is changed, nothing else: `vt_…` becomes the admin key npm start
 * printed, and npm start's default ports (8080 for the API, 8545 for the chain) become the free
 * ones the test started it on (VERITRAIL_URL tells the CLI).
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { freePort } from "./hardhat-node.ts";
import { type Started, npmStart } from "./npm-start.ts";

const REPO = path.resolve(import.meta.dirname, "../..");

export interface Service {
  adminKey: string;
  port: number;
  chainPort: number;
}

export interface CommandResult {
  command: string;
  output: string;
  exitCode: number;
}

/** Fails with a clear message when a tool the documentation uses is not installed. */
export function requireTools(...tools: string[]): void {
  for (const tool of tools) {
    try {
      execFileSync(tool, ["--version"], { stdio: "ignore" });
    } catch {
      throw new Error(`the documented commands need ${tool}, which is not installed`);
    }
  }
}

export interface ShellCommand {
  /** The command as written (`\`-continued lines included). */
  command: string;
  /** The `# → …` lines right after it: what the documentation says it answers. */
  answers: string[];
}

/** Splits a ```sh block into commands: `\`-continued lines join; other comments and blanks drop. */
export function shellCommands(block: string): ShellCommand[] {
  const commands: ShellCommand[] = [];
  let continued: string[] | undefined;
  for (const line of block.split("\n")) {
    if (continued) {
      continued.push(line);
      if (!line.endsWith("\\")) {
        commands.push({ command: continued.join("\n"), answers: [] });
        continued = undefined;
      }
      continue;
    }
    const answer = /^# → (.*)$/.exec(line);
    if (answer) {
      const last = commands.at(-1);
      if (!last) throw new Error(`an answer before any command: ${line}`);
      last.answers.push(answer[1]!);
    } else if (line.trim() === "" || line.trimStart().startsWith("#")) {
      continue;
    } else if (line.endsWith("\\")) {
      continued = [line];
    } else {
      commands.push({ command: line, answers: [] });
    }
  }
  if (continued) throw new Error(`a block ends inside a continued command:\n${continued[0]}`);
  return commands;
}

/** `expected` as a whole-line pattern: `…` matches anything, everything else literally. */
export function answerPattern(expected: string): RegExp {
  const parts = expected.split("…").map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  return new RegExp(`^${parts.join(".*")}$`);
}

function userPath(): string {
  return (process.env.PATH ?? "")
    .split(path.delimiter)
    .filter((dir) => !dir.includes(`${path.sep}node_modules${path.sep}`))
    .join(path.delimiter);
}

/** Runs `commands` in order in one bash; `work` is a scratch directory of the test. */
export async function runCommands(
  commands: string[],
  service: Service,
  work: string,
): Promise<CommandResult[]> {
  const out = path.join(work, "out");
  await mkdir(out, { recursive: true });
  const substituted = commands.map((command) =>
    command
      .replaceAll("vt_…", service.adminKey)
      .replaceAll("localhost:8080", `localhost:${service.port}`)
      .replaceAll("127.0.0.1:8545", `127.0.0.1:${service.chainPort}`)
      // The trust policy npm start writes into its DATA_DIR (here under `work`).
      .replaceAll("./data/trust.json", path.join(work, "data", "trust.json")),
  );
  const script = [
    `cd ${JSON.stringify(REPO)}`,
    ...substituted.map(
      (command, i) => `{\n${command}\n} > ${out}/${i}.out 2>&1; echo $? > ${out}/${i}.rc`,
    ),
  ].join("\n");
  await writeFile(path.join(work, "session.sh"), `${script}\n`);
  const env: Record<string, string | undefined> = {
    ...process.env,
    PATH: userPath(),
    VERITRAIL_URL: `http://127.0.0.1:${service.port}`,
    npm_config_cache: path.join(work, "npm-cache"),
    npm_config_update_notifier: "false",
  };
  delete env["VERITRAIL_KEY"];
  const code = await new Promise<number | null>((resolve, reject) => {
    const bash = spawn("bash", [path.join(work, "session.sh")], { env, stdio: "ignore" });
    bash.on("error", reject);
    bash.on("close", resolve);
  });
  if (code !== 0) throw new Error(`bash exited ${code}`);
  return Promise.all(
    commands.map(async (command, i) => ({
      command,
      output: await readFile(path.join(out, `${i}.out`), "utf8"),
      exitCode: Number((await readFile(path.join(out, `${i}.rc`), "utf8")).trim()),
    })),
  );
}

/**
 * `npm start` for the documented commands: a fresh DATA_DIR under `work`, free ports, and what
 * `runCommands` needs to know about it. Stop it with `stop(started)` (test/support/npm-start.ts).
 */
export async function startForCommands(
  work: string,
): Promise<{ started: Started; service: Service }> {
  const port = await freePort();
  const chainPort = await freePort();
  const started = await npmStart({
    DATA_DIR: path.join(work, "data"),
    PORT: String(port),
    EMBEDDED_CHAIN_PORT: String(chainPort),
  });
  if (started.adminKey === undefined)
    throw new Error(`npm start printed no first admin key:\n${started.output()}`);
  return { started, service: { adminKey: started.adminKey, port, chainPort } };
}
