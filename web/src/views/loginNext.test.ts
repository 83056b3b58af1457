import { describe, expect, it } from "vitest";
import { codeOf, loginError, safeNext } from "./loginNext";

describe("where login goes next", () => {
  it.each([
    [undefined, "/"],
    ["", "/"],
    ["/cameras/porch?t=2026-11-27T14:03:10Z", "/cameras/porch?t=2026-11-27T14:03:10Z"],
    ["/explore?label=person", "/explore?label=person"],
    ["https://evil.example/", "/"],
    ["//evil.example/x", "/"],
    ["/\\evil.example", "/"],
    ["/ok\\..", "/"],
    ["/x\u0000y", "/"],
    ["javascript:alert(1)", "/"],
    ["/login?next=/system", "/"],
  ])("next=%j goes to %j", (next, path) => {
    expect(safeNext(next)).toBe(path);
  });
});

describe("login links and errors", () => {
  it.each([["#code=abc123", "abc123"], ["#code=", null], ["", null], ["#other=1", null], ["#x=1&code=k", "k"]])(
    "%j holds code %j", (hash, code) => {
      expect(codeOf(hash)).toBe(code);
    });

  it("says what a refused token or link means", () => {
    expect(loginError(401, "unknown or revoked API token", false)).toBe("That token is not valid (revoked or mistyped)");
    expect(loginError(401, "", true)).toMatch(/link has been used or has expired/);
    expect(loginError(401, "unknown, used or expired login code", true)).toBe("unknown, used or expired login code");
    expect(loginError(503, "NATS does not answer", false)).toBe("NATS does not answer");
  });
});
