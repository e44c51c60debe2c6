import type { RequestHandler } from "express";
import { ApiError } from "./errors.ts";

/**
 * RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without a Host header, with
 * more than one, or with an invalid value. Valid is RFC 3986's `host [ ":" port ]`: an IP
 * literal in brackets, an IPv4 address or a reg-name (unreserved, sub-delims and %HH), and a
 * port up to 65535; never userinfo. The value is checked, not used: absolute URLs come from
 * PUBLIC_URL.
 */
const HOST_RE =
  /^(?:\[[0-9A-Fa-f:.]{2,45}(?:%25[A-Za-z0-9._~-]+)?\]|(?:[A-Za-z0-9._~!$&'()*+,;=-]|%[0-9A-Fa-f]{2})*)(?::([0-9]{0,5}))?$/;

export function validHost(value: string): boolean {
  const match = HOST_RE.exec(value);
  if (!match) return false;
  const port = match[1];
  return port === undefined || port === "" || Number(port) <= 65_535;
}

export function checkHostHeader(): RequestHandler {
  return (req, _res, next) => {
    let count = 0;
    for (let i = 0; i < req.rawHeaders.length; i += 2)
      if (req.rawHeaders[i]!.toLowerCase() === "host") count++;
    const host = req.headers.host;
    if (count > 1) throw new ApiError("VALIDATION_FAILED", "more than one Host header", "Host");
    if (host === undefined) {
      if (req.httpVersionMajor === 1 && req.httpVersionMinor >= 1)
        throw new ApiError("VALIDATION_FAILED", "an HTTP/1.1 request needs a Host header", "Host");
    } else if (!validHost(host)) {
      throw new ApiError("VALIDATION_FAILED", "the Host header is not a valid host[:port]", "Host");
    }
    next();
  };
}
