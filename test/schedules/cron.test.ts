import { describe, expect, test } from "@jest/globals";
import { cronScheduleProblem, InvalidScheduleError, isIanaTimeZone, nextRunAfter } from "../../src/schedules/cron.ts";
import { ACCEPTED, REFUSED } from "./cron-cases.ts";

/** The next `count` runs after `from`, as ISO strings. */
function runs(schedule: string, timeZone: string, from: string, count: number): string[] {
  const result: string[] = [];
  let after = new Date(from);
  for (let i = 0; i < count; i++) {
    after = nextRunAfter(schedule, timeZone, after);
    result.push(after.toISOString());
  }
  return result;
}

describe("cron grammar", () => {
  test.each(ACCEPTED)("accepts %p", (schedule) => {
    expect(cronScheduleProblem(schedule)).toBeNull();
    expect(() => nextRunAfter(schedule, "UTC", new Date("2025-01-01T00:00:00Z"))).not.toThrow();
  });

  test.each(REFUSED)("refuses %p", (schedule, problem) => {
    expect(cronScheduleProblem(schedule)).toBe(problem);
    expect(() => nextRunAfter(schedule, "UTC", new Date())).toThrow(InvalidScheduleError);
  });
});

describe("time zones", () => {
  test("IANA names are accepted, PostgreSQL's extras and nonsense are not", () => {
    for (const zone of ["UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires", "Etc/GMT+5"]) expect(isIanaTimeZone(zone)).toBe(true);
    for (const zone of ["Mars/Olympus_Mons", "posix/Europe/Berlin", "posixrules", "Factory", "localtime", "", "../etc/passwd"]) {
      expect(isIanaTimeZone(zone)).toBe(false);
    }
    expect(() => nextRunAfter("* * * * *", "Mars/Olympus_Mons", new Date())).toThrow('unknown time zone "Mars/Olympus_Mons"');
  });
});

describe("next run", () => {
  test("steps, ranges and lists", () => {
    expect(runs("*/15 * * * *", "UTC", "2025-01-01T00:00:00Z", 3)).toEqual([
      "2025-01-01T00:15:00.000Z",
      "2025-01-01T00:30:00.000Z",
      "2025-01-01T00:45:00.000Z",
    ]);
    expect(runs("0,30 8-12/2 * * *", "UTC", "2025-01-01T09:00:00Z", 4)).toEqual([
      "2025-01-01T10:00:00.000Z",
      "2025-01-01T10:30:00.000Z",
      "2025-01-01T12:00:00.000Z",
      "2025-01-01T12:30:00.000Z",
    ]);
    // 2025-01-03 is a Friday: weekdays only skips the weekend.
    expect(runs("0 9 * * mon-fri", "UTC", "2025-01-03T10:00:00Z", 2)).toEqual(["2025-01-06T09:00:00.000Z", "2025-01-07T09:00:00.000Z"]);
  });

  test("is strictly after the given instant, even within the same second", () => {
    expect(nextRunAfter("* * * * *", "UTC", new Date("2025-01-01T00:01:00.000Z")).toISOString()).toBe("2025-01-01T00:02:00.000Z");
    expect(nextRunAfter("* * * * *", "UTC", new Date("2025-01-01T00:01:00.900Z")).toISOString()).toBe("2025-01-01T00:02:00.000Z");
    expect(nextRunAfter("* * * * *", "UTC", new Date("2025-01-01T00:00:59.999Z")).toISOString()).toBe("2025-01-01T00:01:00.000Z");
  });

  test("runs at local time in the job's zone", () => {
    // 09:00 in Berlin is 08:00 UTC in winter, 07:00 UTC in summer.
    expect(runs("0 9 * * *", "Europe/Berlin", "2025-03-28T12:00:00Z", 3)).toEqual([
      "2025-03-29T08:00:00.000Z",
      "2025-03-30T07:00:00.000Z",
      "2025-03-31T07:00:00.000Z",
    ]);
  });

  test("spring forward: a time that does not exist runs once, an hour later", () => {
    // New York, 2025-03-09: 02:00 EST jumps to 03:00 EDT.
    expect(runs("30 2 * * *", "America/New_York", "2025-03-08T12:00:00Z", 3)).toEqual([
      "2025-03-09T07:30:00.000Z", // 03:30 EDT
      "2025-03-10T06:30:00.000Z", // 02:30 EDT
      "2025-03-11T06:30:00.000Z",
    ]);
    // Hourly runs skip the missing hour without running twice.
    expect(runs("0 * * * *", "America/New_York", "2025-03-09T05:30:00Z", 3)).toEqual([
      "2025-03-09T06:00:00.000Z", // 01:00 EST
      "2025-03-09T07:00:00.000Z", // 03:00 EDT
      "2025-03-09T08:00:00.000Z", // 04:00 EDT
    ]);
  });

  test("fall back: a time that happens twice runs once; intervals keep real time", () => {
    // New York, 2025-11-02: 02:00 EDT falls back to 01:00 EST.
    expect(runs("30 1 * * *", "America/New_York", "2025-11-01T12:00:00Z", 2)).toEqual([
      "2025-11-02T05:30:00.000Z", // 01:30 EDT, the first 01:30
      "2025-11-03T06:30:00.000Z", // 01:30 EST the next day
    ]);
    expect(runs("*/30 * * * *", "America/New_York", "2025-11-02T04:50:00Z", 5)).toEqual([
      "2025-11-02T05:00:00.000Z", // 01:00 EDT
      "2025-11-02T05:30:00.000Z", // 01:30 EDT
      "2025-11-02T06:00:00.000Z", // 01:00 EST
      "2025-11-02T06:30:00.000Z", // 01:30 EST
      "2025-11-02T07:00:00.000Z", // 02:00 EST
    ]);
  });

  test("a day of month and a weekday both restricted: either one runs (classic cron)", () => {
    // 2025-01-01 is a Wednesday; the 15th or any Monday.
    expect(runs("0 0 15 * mon", "UTC", "2025-01-01T00:00:00Z", 3)).toEqual([
      "2025-01-06T00:00:00.000Z",
      "2025-01-13T00:00:00.000Z",
      "2025-01-15T00:00:00.000Z",
    ]);
  });

  test("February 29th runs in leap years only", () => {
    expect(runs("0 0 29 2 *", "UTC", "2025-01-01T00:00:00Z", 2)).toEqual(["2028-02-29T00:00:00.000Z", "2032-02-29T00:00:00.000Z"]);
  });
});
