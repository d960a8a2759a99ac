/*
 * server/calendar.c: business days and the US federal holidays
 * (server/calendar.h). Day arithmetic after Howard Hinnant's civil-date
 * algorithms (days_from_civil / civil_from_days), written out here.
 */
#include "server/calendar.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/status.h"

#define DAY_MS (24LL * 3600 * 1000)

calendar_day calendar_from_ymd(int y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void calendar_to_ymd(calendar_day day, int *y, int *m, int *d) {
    day += 719468;
    int64_t era = (day >= 0 ? day : day - 146096) / 146097;
    int64_t doe = day - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

/* 0 = Monday .. 6 = Sunday (1970-01-01 was a Thursday). */
static int weekday(calendar_day day) {
    int64_t w = (day + 3) % 7;
    return (int)(w < 0 ? w + 7 : w);
}

/* The `nth` (1-based) `wd` of month m of year y; nth 0: the last. */
static calendar_day nth_weekday(int y, int m, int wd, int nth) {
    if (nth == 0) {
        calendar_day last = calendar_from_ymd(m == 12 ? y + 1 : y, m == 12 ? 1 : m + 1, 1) - 1;
        return last - (weekday(last) - wd + 7) % 7;
    }
    calendar_day first = calendar_from_ymd(y, m, 1);
    return first + (wd - weekday(first) + 7) % 7 + 7 * (nth - 1);
}

/* A fixed-date holiday as observed: Saturday's on Friday, Sunday's on Monday. */
static calendar_day observed(int y, int m, int d) {
    calendar_day day = calendar_from_ymd(y, m, d);
    int wd = weekday(day);
    return wd == 5 ? day - 1 : wd == 6 ? day + 1 : day;
}

bool calendar_us_federal_holiday(calendar_day day) {
    int y, m, d;
    calendar_to_ymd(day, &y, &m, &d);
    /* New Year's Day of next year may be observed on Dec 31. */
    calendar_day fixed[] = {
        observed(y, 1, 1), observed(y + 1, 1, 1), observed(y, 6, 19),
        observed(y, 7, 4), observed(y, 11, 11),   observed(y, 12, 25),
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (fixed[i] == day && (i != 2 || y >= 2021)) /* Juneteenth since 2021 */
            return true;
    calendar_day moving[] = {
        nth_weekday(y, 1, 0, 3),  /* Martin Luther King Jr. Day: 3rd Monday of January */
        nth_weekday(y, 2, 0, 3),  /* Washington's Birthday: 3rd Monday of February */
        nth_weekday(y, 5, 0, 0),  /* Memorial Day: last Monday of May */
        nth_weekday(y, 9, 0, 1),  /* Labor Day: 1st Monday of September */
        nth_weekday(y, 10, 0, 2), /* Columbus Day: 2nd Monday of October */
        nth_weekday(y, 11, 3, 4), /* Thanksgiving: 4th Thursday of November */
    };
    for (size_t i = 0; i < sizeof moving / sizeof moving[0]; i++)
        if (moving[i] == day)
            return true;
    return false;
}

static int cmp_day(const void *a, const void *b) {
    calendar_day x = *(const calendar_day *)a, y = *(const calendar_day *)b;
    return x < y ? -1 : x > y;
}

bool calendar_business_day(const struct calendar *cal, calendar_day day) {
    if (weekday(day) >= 5)
        return false;
    if (cal->n_dates == 0)
        return !calendar_us_federal_holiday(day);
    return !bsearch(&day, cal->dates, cal->n_dates, sizeof *cal->dates, cmp_day);
}

int64_t calendar_deadline(const struct calendar *cal, int64_t from_ms, int n) {
    calendar_day day = from_ms >= 0 ? from_ms / DAY_MS : (from_ms - DAY_MS + 1) / DAY_MS;
    /* At most n business days ahead: bounded, since a year holds far more. */
    for (int found = 0; found < n;)
        if (calendar_business_day(cal, ++day))
            found++;
    return (day + 1) * DAY_MS;
}

int calendar_load(const char *path, calendar_day *out, size_t max, size_t *n, char *err,
                  size_t err_len) {
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, err_len, "%s: cannot read it", path);
        return STATUS_IO;
    }
    char line[256];
    int rc = STATUS_OK;
    *n = 0;
    for (int no = 1; rc == 0 && fgets(line, sizeof line, f); no++) {
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        int y, m, d, used = 0;
        char rest;
        if (sscanf(line, " %n%c", &used, &rest) != 1)
            continue; /* blank or a comment */
        if (sscanf(line, " %4d-%2d-%2d %c", &y, &m, &d, &rest) != 3 || m < 1 || m > 12 || d < 1 ||
            d > 31 || y < 1970 || y > 9999) {
            snprintf(err, err_len, "%s:%d: not a date YYYY-MM-DD", path, no);
            rc = STATUS_BAD_REQUEST;
        } else if (*n == max) {
            snprintf(err, err_len, "%s:%d: more than %zu dates", path, no, max);
            rc = STATUS_BAD_REQUEST;
        } else {
            calendar_day day = calendar_from_ymd(y, m, d);
            int yy, mm, dd;
            calendar_to_ymd(day, &yy, &mm, &dd);
            if (dd != d) {
                snprintf(err, err_len, "%s:%d: no such date", path, no);
                rc = STATUS_BAD_REQUEST;
            } else {
                out[(*n)++] = day;
            }
        }
    }
    fclose(f);
    if (rc == 0)
        qsort(out, *n, sizeof *out, cmp_day);
    return rc;
}
