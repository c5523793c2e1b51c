/**
 * Cron schedules: the 5-field grammar agentplane accepts, IANA time zones,
 * and the next run computed with cron-parser in the job's zone.
 *
 *   ┌ minute        0-59
 *   │ ┌ hour        0-23
 *   │ │ ┌ day       1-31
 *   │ │ │ ┌ month   1-12 or JAN-DEC
 *   │ │ │ │ ┌ weekday 0-7 or SUN-SAT (0 and 7 are Sunday)
 *   * * * * *
 *
 * Each field is a comma-separated list of items; an item is `*`, a value or a
 * range `a-b`, optionally followed by a step `/n` (`*\/15`, `8-18/2`, `5/10`).
 * Names are case-insensitive. When both day and weekday are restricted, a day
 * matching either runs (classic cron). Nothing else (seconds, `L`, `#`, `H`,
 * `?`, `@daily`) is accepted: the database applies the same grammar
 * (`app_hidden.cron_schedule_problem`), and a test holds the two together.
 *
 * Daylight saving time, in the job's zone: a time that does not exist on the
 * spring-forward day runs once, an hour later (02:30 becomes 03:30); a time
 * that happens twice on the fall-back day runs once, at its first occurrence;
 * interval schedules (`*\/30`) keep running every real half hour.
 */
import { CronExpressionParser } from "cron-parser";

interface FieldSpec {
  name: string;
  min: number;
  max: number;
  names?: readonly string[];
}

const MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"] as const;
const WEEKDAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"] as const;

const FIELDS: readonly FieldSpec[] = [
  { name: "minute", min: 0, max: 59 },
  { name: "hour", min: 0, max: 23 },
  { name: "day of month", min: 1, max: 31 },
  { name: "month", min: 1, max: 12, names: MONTHS },
  { name: "day of week", min: 0, max: 7, names: WEEKDAYS },
];

/** The longest each month can be (February in a leap year). */
const DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31] as const;

class CronSyntaxError extends Error {}

function valueOf(token: string, field: FieldSpec): number {
  let value: number;
  if (/^\d{1,2}$/.test(token)) {
    value = Number(token);
  } else {
    const index = field.names?.indexOf(token.toUpperCase() as never) ?? -1;
    if (index < 0) throw new CronSyntaxError(`${field.name}: "${token}" is not a number${field.names ? " or a name" : ""}`);
    value = index + field.min;
  }
  if (value < field.min || value > field.max) {
    throw new CronSyntaxError(`${field.name}: ${value} is outside ${field.min}-${field.max}`);
  }
  return value;
}

/** The values one field selects; throws a CronSyntaxError naming the field. */
function expandField(text: string, field: FieldSpec): Set<number> {
  const values = new Set<number>();
  for (const item of text.split(",")) {
    const match = /^(\*|[A-Za-z0-9]+(?:-[A-Za-z0-9]+)?)(?:\/(\d{1,2}))?$/.exec(item);
    if (match === null) throw new CronSyntaxError(`${field.name}: "${item}" is not a value, a range, * or a step`);
    const [, base = "", stepText] = match;
    const step = stepText === undefined ? 1 : Number(stepText);
    if (step < 1 || step > field.max) throw new CronSyntaxError(`${field.name}: a step must be from 1 to ${field.max}`);
    let low = field.min;
    let high = field.max;
    if (base !== "*") {
      const [from = "", to] = base.split("-");
      low = valueOf(from, field);
      high = to === undefined ? (stepText === undefined ? low : field.max) : valueOf(to, field);
      if (low > high) throw new CronSyntaxError(`${field.name}: the range ${base} runs backwards`);
    }
    for (let value = low; value <= high; value += step) values.add(value);
  }
  return values;
}

/**
 * Why `schedule` is not an acceptable 5-field cron expression, or null when
 * it is. The messages match the database's word for word.
 */
export function cronScheduleProblem(schedule: string): string | null {
  const parts = schedule.trim().split(/\s+/);
  if (parts.length !== 5 || parts[0] === "") {
    return `expected 5 fields (minute hour day month weekday), got ${parts[0] === "" ? 0 : parts.length}`;
  }
  try {
    const [, , days = new Set<number>(), months = new Set<number>()] = parts.map((part, index) => expandField(part, FIELDS[index]!));
    const someDayExists = [...months].some((month) => [...days].some((day) => day <= DAYS_IN_MONTH[month - 1]!));
    if (parts[4] === "*" && !someDayExists) return "no month selected has the days selected: the schedule would never run";
  } catch (error) {
    if (error instanceof CronSyntaxError) return error.message;
    throw error;
  }
  return null;
}

/** Zones the IANA database names and Node's Intl knows; PostgreSQL's `posix/…` copies and aliases are left out. */
export function isIanaTimeZone(timeZone: string): boolean {
  if (timeZone.startsWith("posix/") || ["Factory", "localtime", "posixrules"].includes(timeZone)) return false;
  if (!/^[A-Za-z][A-Za-z0-9_+\-/]*$/.test(timeZone)) return false;
  try {
    new Intl.DateTimeFormat("en", { timeZone });
    return true;
  } catch {
    return false;
  }
}

export class InvalidScheduleError extends Error {}

/**
 * The first run strictly after `after`, in `timeZone`. Throws an
 * InvalidScheduleError for a schedule or zone this module does not accept.
 */
export function nextRunAfter(schedule: string, timeZone: string, after: Date): Date {
  const problem = cronScheduleProblem(schedule);
  if (problem !== null) throw new InvalidScheduleError(`invalid cron schedule "${schedule}": ${problem}`);
  if (!isIanaTimeZone(timeZone)) throw new InvalidScheduleError(`unknown time zone "${timeZone}"`);
  // cron-parser counts from the start of the second it is given.
  const from = new Date(Math.floor(after.getTime() / 1000) * 1000);
  return CronExpressionParser.parse(schedule.trim(), { tz: timeZone, currentDate: from }).next().toDate();
}
