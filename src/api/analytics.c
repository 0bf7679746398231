/* Admin views of the programme: analytics, daily trends and the automation log. */
#include <stdio.h>
#include <string.h>

#include "api/app.h"
#include "core/err.h"

#define TRENDS_DAYS_MAX 366

int api_referral_analytics(struct req *r)
{
    struct app *app = r->app;
    int64_t now = now_ms(), since = 0;
    const char *period = "all";
    int e;
    if ((e = api_period(r, now, &period, &since)))
        return e;
    struct analytics a;
    if ((e = store_analytics(app->store, since, now, &a)))
        return e;
    /* conversionRate: a percentage, as in seed 003 (45 of 150 is 30.0), rounded down to two
     * decimals (0 without referrals); conversionRateBps is the same as an exact integer. */
    int64_t bps = a.total_referrals ? a.converted_referrals * 10000 / a.total_referrals : 0;
    json_t *o = json_object();
    json_object_set_new(o, "period", json_string(period));
    json_object_set_new(o, "totalReferrals", json_integer(a.total_referrals));
    json_object_set_new(o, "convertedReferrals", json_integer(a.converted_referrals));
    json_object_set_new(o, "pendingReferrals",
                        json_integer(a.total_referrals - a.converted_referrals));
    json_object_set_new(o, "conversionRate", json_real((double)bps / 100.0));
    json_object_set_new(o, "conversionRateBps", json_integer(bps));
    json_object_set_new(o, "totalRewardsAwarded", json_integer(a.rewards_awarded));
    json_object_set_new(o, "activeCodes", json_integer(a.active_codes));
    json_object_set_new(o, "expiredCodes", json_integer(a.expired_codes));
    return req_json(r, 200, o);
}

int api_referral_trends(struct req *r)
{
    struct app *app = r->app;
    long long days;
    int e;
    if ((e = api_query_int(r, "days", 1, TRENDS_DAYS_MAX, 30, &days)))
        return e;
    static __thread int64_t signups[TRENDS_DAYS_MAX], conversions[TRENDS_DAYS_MAX];
    int64_t today = now_ms() / 86400000, first = today - days + 1;
    if ((e = store_trends(app->store, first, (int)days, signups, conversions)))
        return e;
    json_t *arr = json_array();
    for (int i = 0; i < days; i++) {
        char date[ISO_TIME_LEN + 1];
        iso_time((first + i) * 86400000, date);
        date[10] = '\0';
        json_array_append_new(arr, json_pack("{s:s, s:I, s:I}", "date", date, "signups",
                                             (json_int_t)signups[i], "conversions",
                                             (json_int_t)conversions[i]));
    }
    return req_json(r, 200, arr);
}

static void log_add(const struct automation_log *l, void *arg)
{
    json_error_t jerr;
    json_t *details = l->details[0] ? json_loads(l->details, 0, &jerr) : NULL;
    json_array_append_new(
        arg, json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o}", "id", l->id, "service",
                       l->service, "action", l->action, "status", l->status, "userId",
                       l->user_id[0] ? json_string(l->user_id) : json_null(), "details",
                       details ? details : json_null(), "errorMessage",
                       l->error[0] ? json_string(l->error) : json_null(), "createdAt",
                       api_time_json(l->created_at)));
}

int api_admin_automation_logs(struct req *r)
{
    struct app *app = r->app;
    long long limit;
    int e;
    if ((e = api_query_int(r, "limit", 1, LIMIT_PAGE_SIZE_MAX, 50, &limit)))
        return e;
    const char *service = req_query(r, "service"), *status = req_query(r, "status");
    const char *cursor = req_query(r, "cursor");
    if (status && strcmp(status, "success") && strcmp(status, "failed") && strcmp(status, "pending"))
        return req_fail(r, TE_VALIDATION, "status", "status must be success, failed or pending");
    if (service && strlen(service) > 100)
        return req_fail(r, TE_VALIDATION, "service", "service is at most 100 bytes");
    if (cursor && !uuid_valid(cursor))
        return req_fail(r, TE_VALIDATION, "cursor", "cursor must be a nextCursor value");
    char cursor_low[UUID_STR_LEN + 1];
    if (cursor) { /* ids compare as the store spells them: lower case */
        str_copy(cursor_low, sizeof cursor_low, cursor);
        uuid_lower(cursor_low);
        cursor = cursor_low;
    }
    json_t *arr = json_array();
    if ((e = store_automation_logs(app->store, service, status, cursor, (int)limit, log_add, arr))) {
        json_decref(arr);
        return e;
    }
    size_t n = json_array_size(arr);
    json_t *last = n ? json_object_get(json_array_get(arr, n - 1), "id") : NULL;
    json_t *o = json_object();
    json_object_set_new(o, "logs", arr);
    json_object_set_new(o, "nextCursor", n == (size_t)limit && last ? json_copy(last) : json_null());
    return req_json(r, 200, o);
}
