/* Event payloads shared by the engines (events.h). They format into the stack rather than
 * through jansson: earning_update runs for every commission paid. */
#include "store/events.h"

#include <stdarg.h>
#include <stdio.h>

#include <jansson.h>

#include "core/err.h"
#include "domain/money.h"

static int fmt(char *out, const char *format, ...) __attribute__((format(printf, 2, 3)));

static int fmt(char *out, const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    int n = vsnprintf(out, EVENT_DATA_MAX, format, ap);
    va_end(ap);
    return n < 0 || n >= EVENT_DATA_MAX ? TE_INTERNAL : 0;
}

int ev_referral_tracked(char *out, const char *referral_id, const char *referred_user_id,
                        const char *referred_name)
{
    /* the name is the user's own text: jansson escapes it */
    json_t *o = json_pack("{s:s, s:s, s:s}", "referralId", referral_id, "referredUserId",
                          referred_user_id, "referredName", referred_name);
    int n = o ? json_dumpb(o, out, EVENT_DATA_MAX - 1, JSON_COMPACT | JSON_PRESERVE_ORDER) : 0;
    json_decref(o);
    if (n <= 0 || n >= EVENT_DATA_MAX)
        return o ? TE_INTERNAL : TE_NOMEM;
    out[n] = '\0';
    return 0;
}

int ev_referral_converted(char *out, const char *referral_id, const char *referred_user_id)
{
    return fmt(out, "{\"referralId\":\"%s\",\"referredUserId\":\"%s\"}", referral_id,
               referred_user_id);
}

int ev_reward_granted_premium(char *out, const char *reward_id, const char *value)
{
    return fmt(out, "{\"rewardId\":\"%s\",\"rewardType\":\"free_premium\",\"rewardValue\":%s}",
               reward_id, value);
}

/* The transaction id as the body of a JSON string: it is the only text here a client chose
 * (clean UTF-8 without controls, checked at the door), so only " and \ need escaping. */
static void json_escape_into(char *out, size_t cap, const char *s)
{
    size_t n = 0;
    for (; *s && n + 3 < cap; s++) {
        if (*s == '"' || *s == '\\')
            out[n++] = '\\';
        out[n++] = *s;
    }
    out[n] = '\0';
}

int ev_earning_update(char *out, const struct commission *cm, const char *buyer,
                      const char *purchase_id, const char *txid)
{
    char amount[MONEY_TEXT_MAX], tx[2 * TXID_MAX_BYTES + 4];
    money_format(cm->cents, amount);
    json_escape_into(tx, sizeof tx, txid);
    return fmt(out,
               "{\"from\":\"%s\",\"level\":%d,\"amount\":\"%s\",\"amountCents\":%lld,"
               "\"purchaseId\":\"%s\",\"transactionId\":\"%s\"}",
               buyer, cm->level, amount, (long long)cm->cents, purchase_id, tx);
}

int ev_points_awarded(char *out, const char *purchase_id, int64_t points, int64_t balance)
{
    return fmt(out, "{\"purchaseId\":\"%s\",\"pointsAwarded\":%lld,\"pointsBalance\":%lld}",
               purchase_id, (long long)points, (long long)balance);
}

int ev_commission_reversed(char *out, const char *purchase_id, const char *refund_id, int level,
                           int64_t cents)
{
    char amount[MONEY_TEXT_MAX];
    money_format(cents, amount);
    return fmt(out,
               "{\"purchaseId\":\"%s\",\"refundId\":\"%s\",\"level\":%d,\"amount\":\"%s\","
               "\"amountCents\":%lld}",
               purchase_id, refund_id, level, amount, (long long)cents);
}

int ev_points_reversed(char *out, const char *purchase_id, const char *refund_id,
                       int64_t reversed, int64_t balance)
{
    return fmt(out,
               "{\"purchaseId\":\"%s\",\"refundId\":\"%s\",\"pointsReversed\":%lld,"
               "\"pointsBalance\":%lld}",
               purchase_id, refund_id, (long long)reversed, (long long)balance);
}

int ev_purchase_refunded(char *out, const char *purchase_id, const char *refund_id,
                         int64_t cents, int64_t points_reversed, int64_t points_unrecovered)
{
    char amount[MONEY_TEXT_MAX];
    money_format(cents, amount);
    return fmt(out,
               "{\"purchaseId\":\"%s\",\"refundId\":\"%s\",\"amount\":\"%s\",\"amountCents\":%lld,"
               "\"pointsReversed\":%lld,\"pointsUnrecovered\":%lld}",
               purchase_id, refund_id, amount, (long long)cents, (long long)points_reversed,
               (long long)points_unrecovered);
}

int ev_points_spent(char *out, const char *redemption_id, int64_t cost, int64_t balance)
{
    return fmt(out, "{\"redemptionId\":\"%s\",\"pointsSpent\":%lld,\"pointsBalance\":%lld}",
               redemption_id, (long long)cost, (long long)balance);
}
