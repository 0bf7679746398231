/* The checks of `tally verify`: standard SQL that PostgreSQL 15 and SQLite both run, with
 * SQLite's own text only where it plans a query much better that way. */
#include "store/verify_checks.h"

/* The bonus-group check up to the lookup of an entry's group, which each engine words its way. */
#define BONUS_GROUPS_PAID                                                                          \
    "SELECT 'bonus group ' || g.id || ' (' || g.status || '): ' || COUNT(l.id) || ' payments'"    \
    " FROM bonus_groups g LEFT JOIN ledger_entries l ON l.kind = 'bonus' AND"                      \
    " l.ref_id = 'bonus-group:' || g.id GROUP BY g.id"                                             \
    " HAVING (g.status = 'paid' AND g.amount_cents > 0 AND (COUNT(l.id) <> 1 OR"                   \
    " SUM(l.amount) <> g.amount_cents)) OR (g.status = 'processing' AND COUNT(l.id) > 0)"          \
    " UNION ALL SELECT 'entry ' || l.id || ': bonus of ' || l.amount || ' for no bonus group'"     \
    " FROM ledger_entries l WHERE l.kind = 'bonus' AND NOT EXISTS (SELECT 1 FROM"

const struct verify_check verify_checks[] = {
    {"cash balances equal the sum of their ledger entries",
     "SELECT 'user ' || w.user_id || ': balance ' || w.cash_cents || ', ledger ' ||"
     " COALESCE(l.s, 0) FROM wallets w LEFT JOIN (SELECT user_id, SUM(amount) s FROM"
     " ledger_entries WHERE account = 'cash' GROUP BY user_id) l ON l.user_id = w.user_id"
     " WHERE w.cash_cents <> COALESCE(l.s, 0)"
     " UNION ALL SELECT 'user ' || l.user_id || ': ledger entries but no wallet' FROM"
     " (SELECT DISTINCT user_id FROM ledger_entries) l LEFT JOIN wallets w ON"
     " w.user_id = l.user_id WHERE w.user_id IS NULL", NULL},
    {"points balances equal the sum of their ledger entries",
     "SELECT 'user ' || w.user_id || ': points ' || w.points || ', ledger ' || COALESCE(l.s, 0)"
     " FROM wallets w LEFT JOIN (SELECT user_id, SUM(amount) s FROM ledger_entries"
     " WHERE account = 'points' GROUP BY user_id) l ON l.user_id = w.user_id"
     " WHERE w.points <> COALESCE(l.s, 0)", NULL},
    {"points never went below zero",
     "SELECT 'user ' || user_id || ': running points reached ' || MIN(running) FROM"
     " (SELECT user_id, SUM(amount) OVER (PARTITION BY user_id ORDER BY id) AS running"
     "  FROM ledger_entries WHERE account = 'points') AS r GROUP BY user_id"
     " HAVING MIN(running) < 0", NULL},
    {"each purchase credited at most once per level",
     "SELECT 'purchase ' || purchase_id || ' level ' || COALESCE(level, 0) || ': ' || COUNT(*)"
     " || ' ' || kind || ' entries' FROM ledger_entries WHERE kind IN ('commission',"
     " 'points_award') GROUP BY purchase_id, kind, user_id, level HAVING COUNT(*) > 1", NULL},
    {"each transaction id recorded once per retailer",
     "SELECT 'transaction ' || transaction_id || ': ' || COUNT(*) || ' purchases' FROM purchases"
     " GROUP BY retailer_key, transaction_id HAVING COUNT(*) > 1", NULL},
    /* A commission (or a reversal, or a points award) whose purchase is missing was paid for
     * nothing: a forger who moves the wallet with it keeps the balances equal. */
    {"commissions equal rate times amount, rounded down to the cent",
     "SELECT 'entry ' || l.id || ': ' || l.amount || ' cents, expected ' ||"
     " (p.amount_cents * l.rate_bps / 10000) FROM ledger_entries l JOIN purchases p ON"
     " p.id = l.purchase_id WHERE l.kind = 'commission' AND (l.rate_bps IS NULL OR"
     " l.amount <> p.amount_cents * l.rate_bps / 10000)"
     " UNION ALL SELECT 'entry ' || l.id || ': ' || l.kind || ' of ' || l.amount ||"
     " ' cents for no recorded purchase' FROM ledger_entries l LEFT JOIN purchases p ON"
     " p.id = l.purchase_id WHERE l.kind IN ('commission', 'commission_reversal') AND"
     " p.id IS NULL", NULL},
    {"points awarded match the purchase record",
     "SELECT 'purchase ' || p.id || ': recorded ' || p.points_awarded || ', ledger ' ||"
     " COALESCE(SUM(l.amount), 0) FROM purchases p LEFT JOIN ledger_entries l ON"
     " l.purchase_id = p.id AND l.kind = 'points_award' GROUP BY p.id"
     " HAVING p.points_awarded <> COALESCE(SUM(l.amount), 0)"
     " UNION ALL SELECT 'entry ' || l.id || ': ' || l.kind || ' of ' || l.amount ||"
     " ' points for no recorded purchase' FROM ledger_entries l LEFT JOIN purchases p ON"
     " p.id = l.purchase_id WHERE l.kind IN ('points_award', 'points_reversal') AND"
     " p.id IS NULL", NULL},
    {"reversals never exceed what was credited",
     "SELECT 'purchase ' || purchase_id || ' user ' || user_id || ': net ' || SUM(amount) FROM"
     " ledger_entries WHERE kind IN ('commission', 'commission_reversal') GROUP BY purchase_id,"
     " user_id, level HAVING SUM(amount) < 0", NULL},
    {"refunded totals match the refunds",
     "SELECT 'purchase ' || p.id || ': refunded ' || p.refunded_cents || ', refunds ' ||"
     " COALESCE(SUM(r.amount_cents), 0) FROM purchases p LEFT JOIN refunds r ON"
     " r.purchase_id = p.id GROUP BY p.id"
     " HAVING p.refunded_cents <> COALESCE(SUM(r.amount_cents), 0)", NULL},
    {"each redemption debited its cost once",
     "SELECT 'redemption ' || r.id || ': cost ' || r.cost_points || ', ledger ' ||"
     " COALESCE(l.s, 0) FROM redemptions r LEFT JOIN (SELECT ref_id, COUNT(*) n,"
     " SUM(amount) s FROM ledger_entries WHERE kind = 'redemption' GROUP BY ref_id) l ON"
     " l.ref_id = r.id WHERE COALESCE(l.n, 0) <> 1 OR l.s <> -r.cost_points"
     " UNION ALL SELECT 'entry ' || l.id || ': redemption of ' || l.amount ||"
     " ' points for no recorded redemption' FROM ledger_entries l WHERE l.kind = 'redemption'"
     " AND NOT EXISTS (SELECT 1 FROM redemptions r WHERE r.id = l.ref_id)", NULL},
    /* Every kind the code writes, with its account and sign (docs/API.md, The ledger). */
    {"each ledger entry is of a known kind, on its account",
     "SELECT 'entry ' || id || ': ' || kind || ' of ' || amount || ' on ' || account FROM"
     " ledger_entries WHERE NOT ("
     " (kind = 'commission' AND account = 'cash' AND amount > 0) OR"
     " (kind = 'commission_reversal' AND account = 'cash' AND amount < 0) OR"
     " (kind = 'bonus' AND account = 'cash' AND amount > 0) OR"
     " (kind = 'points_award' AND account = 'points' AND amount > 0) OR"
     " (kind = 'points_reversal' AND account = 'points' AND amount < 0) OR"
     " (kind = 'redemption' AND account = 'points' AND amount < 0))", NULL},
    {"referrals agree with users.referred_by",
     "SELECT 'user ' || u.id || ': referred_by ' || COALESCE(u.referred_by, 'NULL') ||"
     " ', referral row ' || COALESCE(r.referrer_user_id, 'none') FROM users u LEFT JOIN"
     " referrals r ON r.referred_user_id = u.id WHERE COALESCE(u.referred_by, '') <>"
     " COALESCE(r.referrer_user_id, '')", NULL},
    {"each paid bonus group paid exactly once, and no processing group paid",
     BONUS_GROUPS_PAID " bonus_groups g WHERE l.ref_id = 'bonus-group:' || g.id)",
     /* SQLite: find the group by its integer key first, so each entry is one index probe. */
     BONUS_GROUPS_PAID " bonus_groups g WHERE g.id = CAST(substr(l.ref_id, 13) AS INTEGER) AND"
                       " l.ref_id = 'bonus-group:' || g.id)"},
    {"each bonus group holds exactly its referrals",
     "SELECT 'bonus group ' || g.id || ': size ' || g.size || ', referrals ' || COUNT(r.id)"
     " FROM bonus_groups g LEFT JOIN referrals r ON r.bonus_group_id = g.id"
     " AND r.bonus_status = g.status GROUP BY g.id HAVING COUNT(r.id) <> g.size", NULL},
    {"the referrer tree has no cycle",
     "WITH RECURSIVE chain(start, cur, depth) AS ("
     "  SELECT id, referred_by, 1 FROM users WHERE referred_by IS NOT NULL"
     "  UNION ALL SELECT chain.start, u.referred_by, chain.depth + 1 FROM chain"
     "  JOIN users u ON u.id = chain.cur WHERE u.referred_by IS NOT NULL"
     "  AND chain.cur <> chain.start"
     "  AND chain.depth < 100000)"
     " SELECT DISTINCT 'user ' || start || ' is its own ancestor' FROM chain WHERE cur = start",
     NULL},
};

const size_t verify_check_count = sizeof verify_checks / sizeof verify_checks[0];
