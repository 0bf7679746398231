/* The JSON payloads of the events the engines append in the same transaction as the change
 * they describe (docs/API.md, "Events"). One formatter per payload, shared by both engines, so
 * an engine holds only its SQL. Each writes into out[EVENT_DATA_MAX] and returns 0, or
 * TE_INTERNAL if the text would not fit. Their texts are ids, numbers and a transaction id that
 * was checked clean at the door. Not for use outside src/store/. */
#ifndef TALLY_STORE_EVENTS_H
#define TALLY_STORE_EVENTS_H

#include <stdint.h>

#include "store/store.h"

#define EVENT_DATA_MAX 512

/* referral_tracked, to the referrer: the new referral and the referred user's name */
int ev_referral_tracked(char *out, const char *referral_id, const char *referred_user_id,
                        const char *referred_name);
/* referral_converted, to the referrer */
int ev_referral_converted(char *out, const char *referral_id, const char *referred_user_id);
/* reward_granted for a free-premium reward; value is the reward's JSON value text */
int ev_reward_granted_premium(char *out, const char *reward_id, const char *value);
/* earning_update (seed 001: {from, level, amount}), to the referrer who earned cm */
int ev_earning_update(char *out, const struct commission *cm, const char *buyer,
                      const char *purchase_id, const char *txid);
/* points_update after a purchase awarded points */
int ev_points_awarded(char *out, const char *purchase_id, int64_t points, int64_t balance);
/* purchase_refunded to a referrer: the commission of level taken back (cents > 0) */
int ev_commission_reversed(char *out, const char *purchase_id, const char *refund_id, int level,
                           int64_t cents);
/* points_update after a refund took points back */
int ev_points_reversed(char *out, const char *purchase_id, const char *refund_id,
                       int64_t reversed, int64_t balance);
/* purchase_refunded to the buyer */
int ev_purchase_refunded(char *out, const char *purchase_id, const char *refund_id,
                         int64_t cents, int64_t points_reversed, int64_t points_unrecovered);
/* points_update after a redemption */
int ev_points_spent(char *out, const char *redemption_id, int64_t cost, int64_t balance);

#endif
