import { describe, expect, it } from "vitest";
import { isoUtc, parseIsoOrUnix } from "./time";

describe("times in URLs", () => {
  it.each([
    ["2026-11-27T14:03:10Z", 1795788190],
    ["1795788190", 1795788190],
    ["1795788190.5", 1795788190.5],
    ["not a time", null],
    ["", null],
  ])("%s parses to %s", (text, unix) => {
    expect(parseIsoOrUnix(text)).toBe(unix);
  });

  it("writes whole seconds in UTC", () => {
    expect(isoUtc(1795788190.25)).toBe("2026-11-27T14:03:10Z");
  });
});
