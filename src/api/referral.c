/* Referral endpoints of seed 003: generate-code, track, stats, leaderboard; and /r/CODE.
 *
 * The leaderboard is cached: an entry is served while it is younger than
 * TALLY_LEADERBOARD_CACHE_SECONDS and no referral changed on this node since it was built
 * (app->referral_gen). Writes on other nodes are seen when the entry ages out. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "core/err.h"
#include "domain/code.h"

#define LB_CACHE_SLOTS 64

struct lb_entry {
    char key[64];
    unsigned gen;
    int64_t built_ms;
    char *json;
    size_t len;
};

struct lb_cache {
    pthread_mutex_t mu;
    struct lb_entry e[LB_CACHE_SLOTS];
    unsigned next;
};

struct lb_cache *lb_cache_new(void)
{
    struct lb_cache *c = calloc(1, sizeof *c);
    if (c)
        pthread_mutex_init(&c->mu, NULL);
    return c;
}

void lb_cache_free(struct lb_cache *c)
{
    if (!c)
        return;
    for (int i = 0; i < LB_CACHE_SLOTS; i++)
        free(c->e[i].json);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static int disabled(struct req *r)
{
    struct app *app = r->app;
    return app->cfg.referral_enabled ? 0 : TE_DISABLED;
}

int api_referral_generate_code(struct req *r)
{
    struct app *app = r->app;
    long long days;
    int e;
    if ((e = disabled(r)) ||
        (e = req_int(r, "expiresInDays", false, 1, LIMIT_CODE_EXPIRY_DAYS_MAX,
                     app->cfg.code_expiry_days, &days)))
        return e;
    struct store_write w = {.op = OP_GENERATE_CODE};
    str_copy(w.in.gen_code.user_id, sizeof w.in.gen_code.user_id, r->who.user.id);
    w.in.gen_code.code_length = app->cfg.code_length;
    w.in.gen_code.code_ttl_ms = days * 86400000LL;
    /* Rare (once per code lifetime per user): a blocking commit keeps this handler simple. */
    if ((e = store_exec(app->store, &w)))
        return e;
    json_t *o = json_object();
    json_object_set_new(o, "code", json_string(w.out.gen_code.code));
    json_object_set_new(o, "userId", json_string(w.out.gen_code.user_id));
    json_object_set_new(o, "expiresAt", api_time_json(w.out.gen_code.expires_at));
    return req_json(r, 201, o);
}

int api_referral_track(struct req *r)
{
    struct app *app = r->app;
    const char *code = NULL;
    int e;
    if ((e = disabled(r)) || (e = req_str(r, "referralCode", true, &code)))
        return e;
    struct store_write w = {.op = OP_TRACK};
    if (code_normalize(code, w.in.track.code, sizeof w.in.track.code))
        return req_fail(r, TE_CODE_INVALID, "referralCode", "Referral code is unknown");
    str_copy(w.in.track.user_id, sizeof w.in.track.user_id, r->who.user.id);
    e = store_exec(app->store, &w);
    if (e == TE_CODE_INVALID || e == TE_CODE_EXPIRED || e == TE_CODE_INACTIVE ||
        e == TE_SELF_REFERRAL || e == TE_REFERRAL_CYCLE)
        return req_fail(r, e, "referralCode", "%s", err_message(e));
    if (e)
        return e;
    atomic_fetch_add(&app->referral_gen, 1);
    json_t *o = json_object();
    json_object_set_new(o, "message", json_string("Referral tracked successfully"));
    json_object_set_new(o, "referralId", json_string(w.out.track.referral_id));
    json_object_set_new(o, "referrerUserId", json_string(w.out.track.referrer_id));
    return req_json(r, 201, o);
}

int api_referral_stats(struct req *r)
{
    struct app *app = r->app;
    struct referral_stats st;
    int e;
    if ((e = disabled(r)) || (e = store_referral_stats(app->store, r->who.user.id, &st)))
        return e;
    return req_json(r, 200,
                    json_pack("{s:I, s:I, s:I, s:I}", "totalReferrals", (json_int_t)st.total,
                              "convertedReferrals", (json_int_t)st.converted,
                              "pendingReferrals", (json_int_t)st.pending, "totalRewardsEarned",
                              (json_int_t)st.rewards));
}

/* a***@example.com: enough to recognise yourself, not enough to harvest addresses. */
static void mask_email(const char *email, char *out, size_t cap)
{
    const char *at = strchr(email, '@');
    if (!at || at == email) {
        str_copy(out, cap, "***");
        return;
    }
    /* Keep the whole first character: half a UTF-8 sequence is not a JSON string, and the
     * row would be lost. */
    int n = 1;
    while (email + n < at && ((unsigned char)email[n] & 0xc0) == 0x80)
        n++;
    snprintf(out, cap, "%.*s***%s", n, email, at);
}

static char *leaderboard_build(struct req *r, int64_t since, int limit, int page, bool admin,
                               int *err)
{
    struct app *app = r->app;
    struct lb_row rows[LIMIT_PAGE_SIZE_MAX];
    int n = 0;
    *err = store_leaderboard(app->store, since, limit, (page - 1) * limit, rows, &n);
    if (*err)
        return NULL;
    json_t *arr = json_array();
    for (int i = 0; i < n; i++) {
        char masked[EMAIL_MAX_BYTES + 8];
        if (!admin)
            mask_email(rows[i].email, masked, sizeof masked);
        /* json_pack refuses invalid UTF-8 with NULL: fail loudly rather than drop the row. */
        if (json_array_append_new(
                arr, json_pack("{s:s, s:s, s:s, s:I, s:I, s:I}", "userId", rows[i].user_id,
                               "name", rows[i].name, "email", admin ? rows[i].email : masked,
                               "totalReferrals", (json_int_t)rows[i].total,
                               "convertedReferrals", (json_int_t)rows[i].converted, "rank",
                               (json_int_t)rows[i].rank))) {
            json_decref(arr);
            *err = TE_INTERNAL;
            return NULL;
        }
    }
    char *text = json_dumps(arr, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(arr);
    if (!text)
        *err = TE_NOMEM;
    return text;
}

/* The leaderboard as JSON text, from the cache when fresh (shared by REST and GraphQL).
 * *text is malloc'd; the caller frees it. */
int api_leaderboard_text(struct req *r, const char *period, int64_t since, int limit, int page,
                         char **text_out, size_t *len_out)
{
    struct app *app = r->app;
    int e;
    if ((e = disabled(r)))
        return e;
    int64_t now = now_ms();
    bool admin = api_is_admin(r);
    char key[64];
    snprintf(key, sizeof key, "%s|%d|%d|%d", period, limit, page, admin);
    unsigned gen = atomic_load(&app->referral_gen);
    int64_t ttl_ms = (int64_t)app->cfg.leaderboard_cache_s * 1000;
    struct lb_cache *c = app->lb;
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < LB_CACHE_SLOTS; i++) {
        struct lb_entry *en = &c->e[i];
        if (en->json && en->gen == gen && now - en->built_ms < ttl_ms &&
            strcmp(en->key, key) == 0) {
            *text_out = strndup(en->json, en->len);
            *len_out = en->len;
            pthread_mutex_unlock(&c->mu);
            return *text_out ? 0 : TE_NOMEM;
        }
    }
    pthread_mutex_unlock(&c->mu);
    char *text = leaderboard_build(r, since, limit, page, admin, &e);
    if (!text)
        return e;
    size_t len = strlen(text);
    *text_out = strndup(text, len);
    *len_out = len;
    if (ttl_ms > 0) {
        pthread_mutex_lock(&c->mu);
        struct lb_entry *en = &c->e[c->next++ % LB_CACHE_SLOTS];
        free(en->json);
        str_copy(en->key, sizeof en->key, key);
        en->gen = gen;
        en->built_ms = now;
        en->json = text;
        en->len = len;
        pthread_mutex_unlock(&c->mu);
    } else {
        free(text);
    }
    return *text_out ? 0 : TE_NOMEM;
}

int api_referral_leaderboard(struct req *r)
{
    int e;
    if ((e = disabled(r)))
        return e;
    const char *period;
    int64_t since;
    long long limit, page;
    if ((e = api_period(r, now_ms(), &period, &since)) ||
        (e = api_query_int(r, "limit", 1, LIMIT_PAGE_SIZE_MAX, 10, &limit)) ||
        (e = api_query_int(r, "page", 1, LIMIT_PAGE_MAX, 1, &page)))
        return e;
    char *text;
    size_t len;
    if ((e = api_leaderboard_text(r, period, since, (int)limit, (int)page, &text, &len)))
        return e;
    e = req_raw(r, 200, "application/json", text, len);
    free(text);
    return e;
}

static void visit_done(struct store_write *w)
{
    free(w);
}

int api_referral_redirect(struct req *r)
{
    struct app *app = r->app;
    char code[CODE_MAX_BYTES];
    struct ref_code rc;
    int e;
    if ((e = disabled(r)))
        return e;
    /* A person following a stale link in a browser is better served by the sign-up page
     * than by a JSON 404; programs (no text/html in Accept) get the 404. */
    const char *accept = req_header(r, "Accept");
    bool browser = accept && strstr(accept, "text/html");
    const char *base = app->cfg.signup_url;
    if (code_normalize(r->params[0], code, sizeof code))
        return browser ? req_redirect(r, base)
                       : req_fail(r, TE_NOT_FOUND, NULL, "Referral code is unknown");
    e = store_code_get(app->store, code, &rc);
    if (e == TE_CODE_INVALID)
        return browser ? req_redirect(r, base)
                       : req_fail(r, TE_NOT_FOUND, NULL, "Referral code is unknown");
    if (e)
        return e;
    char loc[600];
    if (!rc.active || rc.expires_at <= now_ms()) {
        /* The visitor can still sign up, just without a code that would be refused. */
        return req_redirect(r, base);
    }
    snprintf(loc, sizeof loc, "%s%sref=%s", base, strchr(base, '?') ? "&" : "?", code);
    /* Count the visit for attribution without making the visitor wait for the commit. A HEAD is
     * a link checker or a chat app's preview, not a person: it gets the redirect, uncounted. */
    if (strcmp(r->method, "HEAD") == 0)
        return req_redirect(r, loc);
    struct store_write *w = calloc(1, sizeof *w);
    if (w) {
        w->op = OP_CODE_VISIT;
        str_copy(w->in.visit.code_id, sizeof w->in.visit.code_id, rc.id);
        w->done = visit_done;
        if (store_submit(app->store, w))
            free(w);
    }
    return req_redirect(r, loc);
}
