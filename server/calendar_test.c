/* server/calendar_test.c: business days and the breach deadline, table-driven
 * against dates checked on a calendar (OPM's federal holiday tables). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/status.h"
#include "server/calendar.h"

#define DAY_MS (24LL * 3600 * 1000)

static int64_t at(int y, int m, int d, int hour) {
    return calendar_from_ymd(y, m, d) * DAY_MS + (int64_t)hour * 3600 * 1000;
}

static void test_calendar_days_round_trip(void **state) {
    (void)state;
    assert_int_equal(calendar_from_ymd(1970, 1, 1), 0);
    assert_int_equal(calendar_from_ymd(2000, 3, 1), 11017);
    for (calendar_day day = -1000; day < 200000; day += 37) {
        int y, m, d;
        calendar_to_ymd(day, &y, &m, &d);
        assert_int_equal(calendar_from_ymd(y, m, d), day);
    }
}

/* The observed US federal holidays of 2026 and 2027, and days that are not. */
static void test_calendar_us_federal_holidays(void **state) {
    (void)state;
    static const int holidays[][3] = {
        {2026, 1, 1},   {2026, 1, 19},  {2026, 2, 16},  {2026, 5, 25},
        {2026, 6, 19},  {2026, 7, 3}, /* July 4 is a Saturday */
        {2026, 9, 7},   {2026, 10, 12}, {2026, 11, 11}, {2026, 11, 26},
        {2026, 12, 25}, {2027, 1, 1},   {2027, 1, 18},  {2027, 2, 15},
        {2027, 5, 31},  {2027, 6, 18}, /* June 19 is a Saturday */
        {2027, 7, 5},                  /* July 4 is a Sunday */
        {2027, 9, 6},   {2027, 10, 11}, {2027, 11, 11}, {2027, 11, 25},
        {2027, 12, 24}, /* December 25 is a Saturday */
        {2027, 12, 31}, /* January 1, 2028 is a Saturday */
    };
    for (size_t i = 0; i < sizeof holidays / sizeof holidays[0]; i++)
        if (!calendar_us_federal_holiday(
                calendar_from_ymd(holidays[i][0], holidays[i][1], holidays[i][2])))
            fail_msg("%d-%02d-%02d is a holiday", holidays[i][0], holidays[i][1], holidays[i][2]);
    static const int not_holidays[][3] = {
        {2026, 7, 4}, {2026, 12, 24}, {2027, 6, 19}, {2027, 12, 25},
        {2028, 1, 1}, {2026, 3, 2},   {2020, 6, 19}, /* before Juneteenth became one */
    };
    for (size_t i = 0; i < sizeof not_holidays / sizeof not_holidays[0]; i++)
        if (calendar_us_federal_holiday(
                calendar_from_ymd(not_holidays[i][0], not_holidays[i][1], not_holidays[i][2])))
            fail_msg("%d-%02d-%02d is no holiday", not_holidays[i][0], not_holidays[i][1],
                     not_holidays[i][2]);
}

/* Seven business days after the discovery, over weekends, holidays and a
 * year's end. */
static void test_calendar_breach_deadline(void **state) {
    (void)state;
    struct calendar us = {0};
    static const struct {
        int from[4]; /* y, m, d, hour (UTC) */
        int due[3];  /* the deadline is the end of this day */
    } cases[] = {
        {{2026, 11, 30, 10}, {2026, 12, 9}}, /* Monday: plain weeks */
        {{2026, 11, 30, 23}, {2026, 12, 9}}, /* the hour does not matter */
        {{2026, 12, 18, 9}, {2026, 12, 30}}, /* over Christmas (a Friday) */
        {{2026, 11, 25, 9}, {2026, 12, 7}},  /* over Thanksgiving */
        {{2026, 7, 4, 12}, {2026, 7, 14}},   /* found on a Saturday holiday */
        {{2027, 12, 22, 8}, {2028, 1, 4}},   /* Dec 24 and Dec 31 observed; a new year */
        {{2027, 1, 1, 0}, {2027, 1, 12}},    /* found on New Year's Day */
        {{2026, 12, 5, 0}, {2026, 12, 15}},  /* found on a Saturday */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t from = at(cases[i].from[0], cases[i].from[1], cases[i].from[2], cases[i].from[3]);
        int64_t want = at(cases[i].due[0], cases[i].due[1], cases[i].due[2], 24);
        int64_t got = calendar_deadline(&us, from, 7);
        if (got != want) {
            int y, m, d;
            calendar_to_ymd(got / DAY_MS - 1, &y, &m, &d);
            fail_msg("case %zu: due at the end of %d-%02d-%02d, not %d-%02d-%02d", i, y, m, d,
                     cases[i].due[0], cases[i].due[1], cases[i].due[2]);
        }
    }
}

/* A calendar file replaces the federal holidays; bad lines are named. */
static void test_calendar_file(void **state) {
    (void)state;
    char path[512];
    const char *dir = getenv("TEST_TMPDIR");
    snprintf(path, sizeof path, "%s/holidays.txt", dir ? dir : "/tmp");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("# clinic holidays\n2026-12-01   # founders' day\n\n2026-11-30\n", f);
    fclose(f);
    calendar_day days[8];
    size_t n = 0;
    char err[256];
    assert_int_equal(calendar_load(path, days, 8, &n, err, sizeof err), 0);
    assert_int_equal(n, 2);
    assert_true(days[0] < days[1]);
    struct calendar clinic = {days, n};
    /* Found Friday 2026-11-27: Nov 30 and Dec 1 are holidays, Christmas is not. */
    assert_true(calendar_deadline(&clinic, at(2026, 11, 27, 9), 7) == at(2026, 12, 10, 24));
    assert_true(calendar_business_day(&clinic, calendar_from_ymd(2026, 12, 25)));
    assert_false(calendar_business_day(&clinic, calendar_from_ymd(2026, 12, 1)));

    static const char *const bad[] = {"2026-13-01\n", "2026-02-30\n", "tomorrow\n",
                                      "2026-12-01 extra\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        f = fopen(path, "w");
        fputs("2026-01-02\n", f);
        fputs(bad[i], f);
        fclose(f);
        assert_int_equal(calendar_load(path, days, 8, &n, err, sizeof err), STATUS_BAD_REQUEST);
        assert_non_null(strstr(err, ":2:"));
    }
    f = fopen(path, "w");
    for (int i = 1; i <= 9; i++)
        fprintf(f, "2026-01-%02d\n", i);
    fclose(f);
    assert_int_equal(calendar_load(path, days, 8, &n, err, sizeof err), STATUS_BAD_REQUEST);
    assert_int_equal(calendar_load("/nonexistent/holidays", days, 8, &n, err, sizeof err),
                     STATUS_IO);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_calendar_days_round_trip),
        cmocka_unit_test(test_calendar_us_federal_holidays),
        cmocka_unit_test(test_calendar_breach_deadline),
        cmocka_unit_test(test_calendar_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
