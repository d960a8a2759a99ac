/*
 * server/calendar.h: business days, for the breach notification deadline
 * (notices within 7 business days of the discovery).
 *
 * A business day is a day Monday to Friday that is not a holiday, in UTC
 * dates. The holidays are the US federal holidays by default, observed as
 * the Office of Personnel Management observes them (one on a Saturday is
 * observed the Friday before, one on a Sunday the Monday after), or the
 * dates of a calendar file given with --holidays (one YYYY-MM-DD per line;
 * `#` starts a comment), which replaces them.
 *
 * Pure functions of their arguments; any thread.
 */
#ifndef SERVER_CALENDAR_H
#define SERVER_CALENDAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Days since 1970-01-01 (UTC). */
typedef int64_t calendar_day;

/* The holidays: the US federal ones (n_dates 0, dates NULL), or exactly the
 * given days (sorted ascending). */
struct calendar {
    const calendar_day *dates;
    size_t n_dates;
};

/* The day of y-m-d (proleptic Gregorian), and back. */
calendar_day calendar_from_ymd(int y, int m, int d);
void calendar_to_ymd(calendar_day day, int *y, int *m, int *d);

/* Whether `day` is an observed US federal holiday. */
bool calendar_us_federal_holiday(calendar_day day);

/* Whether `day` is a business day under `cal`. */
bool calendar_business_day(const struct calendar *cal, calendar_day day);

/* The end (exclusive, in ms since the epoch) of the `n`th business day after
 * the day of `from_ms`: the deadline of something due within n business
 * days of `from_ms` (the day itself does not count). */
int64_t calendar_deadline(const struct calendar *cal, int64_t from_ms, int n);

/* Reads a calendar file (see above) into a sorted array of at most `max`
 * days. Returns 0 and *n; STATUS_BAD_REQUEST naming the line in err for a bad
 * line or too many dates; STATUS_IO when it cannot be read. */
int calendar_load(const char *path, calendar_day *out, size_t max, size_t *n, char *err,
                  size_t err_len);

#endif
