/**
 * What the commands that talk to a running Veritrail API share: the `--url` and `--key` options
 * (also from VERITRAIL_URL and VERITRAIL_KEY, so a key need not sit in the shell history), and
 * one request function whose failures carry the message the command prints before exiting 2.
 */
import { Option } from "commander";

export const DEFAULT_API_URL = "http://127.0.0.1:8080";

export interface ApiOptions {
  url: string;
  key: string;
}

/** `--url <api>`: the API's base URL; default npm start's address. */
export function urlOption(): Option {
  return new Option("--url <api>", "base URL of the Veritrail API")
    .env("VERITRAIL_URL")
    .default(DEFAULT_API_URL);
}

/** `--key <key>` (required, or VERITRAIL_KEY). */
export function keyOption(which: string): Option {
  return new Option("--key <key>", which).env("VERITRAIL_KEY").makeOptionMandatory();
}

/** The API could not be reached, or answered with an error: the command exits 2. */
export class ApiCallError extends Error {
  constructor(
    message: string,
    readonly status?: number,
    readonly code?: string,
  ) {
    super(message);
    this.name = "ApiCallError";
  }
}

export function apiUrl(opts: Pick<ApiOptions, "url">, route: string): URL {
  try {
    return new URL(route, opts.url);
  } catch {
    throw new ApiCallError(`--url is not a URL: ${opts.url}`);
  }
}

/** Turns an error answer into "the API answered 403: FORBIDDEN: role writer may not …". */
export async function errorAnswer(res: Response): Promise<ApiCallError> {
  const text = await res.text().catch(() => "");
  let message = text.slice(0, 500);
  let code: string | undefined;
  try {
    const parsed = JSON.parse(text) as { error?: { code?: string; message?: string } };
    if (parsed.error) {
      code = parsed.error.code;
      message = `${parsed.error.code}: ${parsed.error.message}`;
    }
  } catch {
    // not JSON: keep the text
  }
  return new ApiCallError(`the API answered ${res.status}: ${message}`, res.status, code);
}

/** Sends one request with the key; resolves to the response when its status is `expect`. */
export async function apiFetch(
  opts: ApiOptions,
  method: string,
  route: string,
  init: { body?: unknown; expect?: number } = {},
): Promise<Response> {
  const url = apiUrl(opts, route);
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      headers: {
        authorization: `Bearer ${opts.key}`,
        ...(init.body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
    });
  } catch (e) {
    throw new ApiCallError(`cannot reach ${url.origin}: ${(e as Error).message}`);
  }
  if (res.status !== (init.expect ?? 200)) throw await errorAnswer(res);
  return res;
}

/** `apiFetch` and the answer's JSON. */
export async function apiJson<T>(
  opts: ApiOptions,
  method: string,
  route: string,
  init: { body?: unknown; expect?: number } = {},
): Promise<T> {
  const res = await apiFetch(opts, method, route, init);
  try {
    return (await res.json()) as T;
  } catch (e) {
    throw new ApiCallError(`the API's answer is not JSON: ${(e as Error).message}`);
  }
}
