import { describe, expect, it } from "vitest";
import { closeOutcome, followLiveEdge, playable, reconnectDelayS } from "./live";

describe("following the live edge", () => {
  it.each([
    ["nothing buffered", [], 0, true, { seek: null, play: false, removeBefore: null }],
    ["first fragment: start near its end", [{ start: 12, end: 12.9 }], 0, true, { seek: 12.7, play: true, removeBefore: null }],
    ["close behind: stay", [{ start: 12, end: 14 }], 13.5, false, { seek: null, play: false, removeBefore: null }],
    ["over a second behind: jump", [{ start: 12, end: 16 }], 14.5, false, { seek: 15.8, play: false, removeBefore: null }],
    ["outside the newest range (after a hole)", [{ start: 0, end: 5 }, { start: 7, end: 7.5 }], 4.9, false,
      { seek: 7.3, play: false, removeBefore: null }],
    ["trims all but 10 s behind", [{ start: 0, end: 20.1 }], 20, false, { seek: null, play: false, removeBefore: 10 }],
  ])("%s", (_, buffered, currentTime, paused, action) => {
    const got = followLiveEdge(buffered, currentTime, paused);
    expect(got.play).toBe(action.play);
    expect(got.removeBefore).toBe(action.removeBefore);
    if (action.seek === null) expect(got.seek).toBeNull();
    else expect(got.seek).toBeCloseTo(action.seek, 9);
  });
});

describe("reconnecting", () => {
  it("backs off to 10 s", () => {
    expect([0, 1, 2, 3, 4, 5, 9].map(reconnectDelayS)).toEqual([0.5, 1, 2, 4, 8, 10, 10]);
  });

  it.each([
    [4404, false, false],
    [4408, true, false],
    [1008, false, true],
    [1006, true, false],
    [1011, true, false],
    [4429, true, false],
  ])("close %d: retry %s, log in %s", (code, retry, login) => {
    const outcome = closeOutcome(code, "");
    expect([outcome.retry, outcome.login]).toEqual([retry, login]);
    expect(outcome.message).not.toBe("");
  });

  it("H.265 is refused where the browser cannot decode it", () => {
    const chromium = (mime: string) => mime.includes("avc1");
    expect(playable('video/mp4; codecs="avc1.64001f"', chromium)).toBe(true);
    expect(playable('video/mp4; codecs="hvc1.1.6.L93.B0"', chromium)).toBe(false);
    expect(playable("x", () => { throw new Error("no MSE"); })).toBe(false);
  });
});
