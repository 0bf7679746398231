/* The web pages (see web.h). Handlers here read the session cookie themselves, so that a
 * visitor without one is sent to the log-in page instead of getting a JSON 401. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/app.h"
#include "core/err.h"
#include "domain/code.h"
#include "domain/money.h"
#include "security/token.h"
#include "web/html.h"
#include "web/web.h"

#define SESSION_COOKIE "tally_session"
#define CSRF_COOKIE "tally_csrf"
#define CSRF_HEX 32
#define CSP "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " \
            "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
#define FIELD_MAX 512

/* ---- sessions, CSRF, responses ---- */

static bool https(struct req *r)
{
    const char *p = req_header(r, "X-Forwarded-Proto");
    return p && strcasecmp(p, "https") == 0;
}

static int session_user(struct req *r, struct user *u)
{
    struct app *app = r->app;
    const char *tok = req_cookie(r, SESSION_COOKIE);
    char uid[ID_LEN + 1];
    if (!tok || token_verify(app->jwt_secret, app->jwt_secret_len, tok, now_ms() / 1000, uid,
                             sizeof uid))
        return TE_UNAUTHORIZED;
    int e = store_user_get(app->store, uid, u);
    /* A user the database no longer has is signed out. A database that cannot answer is an
     * error page (page_error), not a sign-out: the user would be sent to log in again for a
     * database restart. */
    return e == TE_USER_NOT_FOUND ? TE_UNAUTHORIZED : e;
}

static bool hex_token_ok(const char *s)
{
    if (!s || strlen(s) != CSRF_HEX)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

/* The CSRF token of this browser: its cookie, or a new one set with this response. */
static void csrf_token(struct req *r, char out[CSRF_HEX + 1])
{
    const char *c = req_cookie(r, CSRF_COOKIE);
    if (hex_token_ok(c)) {
        str_copy(out, CSRF_HEX + 1, c);
        return;
    }
    random_hex(out, CSRF_HEX / 2);
    char cookie[160];
    snprintf(cookie, sizeof cookie, CSRF_COOKIE "=%s; Path=/; HttpOnly; SameSite=Strict%s", out,
             https(r) ? "; Secure" : "");
    req_add_header(r, "Set-Cookie", cookie);
}

/* A form post is ours when its csrf field matches the cookie (double submit; the cookie is
 * SameSite=Strict, so another site can neither read nor send it). */
static bool csrf_ok(struct req *r)
{
    const char *c = req_cookie(r, CSRF_COOKIE);
    char field[CSRF_HEX + 8];
    if (!hex_token_ok(c) || req_form(r, "csrf", field, sizeof field) != 0 ||
        strlen(field) != CSRF_HEX)
        return false;
    return sodium_memcmp(c, field, CSRF_HEX) == 0;
}

static int send_page(struct req *r, int status, struct html *h)
{
    if (h->oom) {
        html_release(h);
        return TE_NOMEM;
    }
    req_add_header(r, "Content-Security-Policy", CSP);
    req_add_header(r, "Cache-Control", "no-store");
    req_add_header(r, "Referrer-Policy", "same-origin");
    int e = req_raw(r, status, "text/html; charset=utf-8", h->p ? h->p : "", h->len);
    html_release(h);
    return e;
}

static int see_other(struct req *r, const char *location)
{
    req_add_header(r, "Cache-Control", "no-store");
    int e = req_redirect(r, location);
    r->status = 303; /* after a POST: the browser GETs the new page */
    return e;
}

static void page_begin(struct html *h, const char *title, const struct user *u,
                       const char *csrf)
{
    html_raw(h, "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                "<title>");
    html_text(h, title);
    html_raw(h, " · tally</title><link rel=\"stylesheet\" href=\"/static/app.css\"></head><body>"
                "<header><nav><span class=\"brand\">tally</span>"
                "<a href=\"/referral/leaderboard\">Leaderboard</a>");
    if (u) {
        html_raw(h, "<a href=\"/dashboard\">Dashboard</a>");
        if (u->is_admin)
            html_raw(h, "<a href=\"/admin\">Admin</a>");
        html_raw(h, "<form method=\"post\" action=\"/auth/logout\"><input type=\"hidden\" "
                    "name=\"csrf\" value=\"");
        html_text(h, csrf);
        html_raw(h, "\"><button class=\"link\" type=\"submit\">Log out</button></form>");
    } else {
        html_raw(h, "<a href=\"/auth/login\">Log in</a><a href=\"/auth/signup\">Sign up</a>");
    }
    html_raw(h, "</nav></header><main>");
}

static void page_end(struct html *h, bool script)
{
    html_raw(h, "</main>");
    if (script)
        html_raw(h, "<script src=\"/static/app.js\"></script>");
    html_raw(h, "</body></html>");
}

/* A page that could not be made, as a page with the error's status: a browser showing the
 * JSON error body helps nobody. A 503 (the database away) says to try again. */
static int page_error(struct req *r, int e)
{
    char csrf[CSRF_HEX + 1];
    csrf_token(r, csrf);
    int status = err_status(e);
    struct html h;
    html_init(&h);
    page_begin(&h, status == 503 ? "Unavailable" : "Error", NULL, csrf);
    html_raw(&h, "<h1>Sorry</h1><p class=\"notice\">");
    html_text(&h, status == 503 ? "This page is unavailable for a moment; please try again shortly."
                                : "Something went wrong; please try again later.");
    html_raw(&h, "</p>");
    page_end(&h, false);
    return send_page(r, status, &h);
}

static void field(struct html *h, const char *label, const char *name, const char *type,
                  const char *value, const char *autocomplete, const char *err_field,
                  const char *err_msg)
{
    html_raw(h, "<label>");
    html_text(h, label);
    html_raw(h, "<input name=\"");
    html_raw(h, name);
    html_raw(h, "\" type=\"");
    html_raw(h, type);
    html_raw(h, "\" autocomplete=\"");
    html_raw(h, autocomplete);
    html_raw(h, "\" value=\"");
    html_text(h, value ? value : "");
    html_raw(h, "\">");
    if (err_field && strcmp(err_field, name) == 0) {
        html_raw(h, "<span class=\"error\" id=\"error-");
        html_raw(h, name);
        html_raw(h, "\">");
        html_text(h, err_msg);
        html_raw(h, "</span>");
    }
    html_raw(h, "</label>");
}

static void form_value(struct req *r, const char *name, char *out, size_t cap)
{
    if (req_form(r, name, out, cap) != 0)
        out[0] = '\0';
}

int web_asset_css(struct req *r)
{
    req_add_header(r, "Cache-Control", "public, max-age=3600");
    return req_raw(r, 200, "text/css; charset=utf-8", web_css, strlen(web_css));
}

int web_asset_js(struct req *r)
{
    req_add_header(r, "Cache-Control", "public, max-age=3600");
    return req_raw(r, 200, "text/javascript; charset=utf-8", web_js, strlen(web_js));
}

int web_root(struct req *r)
{
    struct user u;
    /* signed in, or the database cannot say: the dashboard (which says so) */
    return see_other(r, session_user(r, &u) != TE_UNAUTHORIZED ? "/dashboard" : "/auth/login");
}

static int start_session(struct req *r, const struct user *u)
{
    struct app *app = r->app;
    char *tok = auth_token_for(r, u);
    if (!tok)
        return TE_NOMEM;
    char cookie[2300];
    snprintf(cookie, sizeof cookie, SESSION_COOKIE "=%s; Path=/; HttpOnly; SameSite=Lax; Max-Age=%d%s",
             tok, app->cfg.jwt_ttl_s, https(r) ? "; Secure" : "");
    sodium_memzero(tok, strlen(tok));
    free(tok);
    if (strlen(cookie) >= sizeof r->extra[0].value)
        return TE_INTERNAL;
    req_add_header(r, "Set-Cookie", cookie);
    return see_other(r, "/dashboard");
}

/* ---- sign-up ---- */

static int signup_page(struct req *r, int status, const char *name, const char *email,
                       const char *code, const char *err_field, const char *err_msg)
{
    char csrf[CSRF_HEX + 1];
    csrf_token(r, csrf);
    struct html h;
    html_init(&h);
    page_begin(&h, "Sign up", NULL, csrf);
    html_raw(&h, "<h1>Create your account</h1><div class=\"card\">");
    if (err_field && !err_field[0] && err_msg && err_msg[0]) {
        html_raw(&h, "<p class=\"notice\" id=\"form-error\">");
        html_text(&h, err_msg);
        html_raw(&h, "</p>");
    }
    html_raw(&h, "<form class=\"stack\" method=\"post\" action=\"/auth/signup\" novalidate>"
                 "<input type=\"hidden\" name=\"csrf\" value=\"");
    html_text(&h, csrf);
    html_raw(&h, "\">");
    field(&h, "Name", "name", "text", name, "name", err_field, err_msg);
    field(&h, "Email", "email", "email", email, "email", err_field, err_msg);
    field(&h, "Password (8 to 128 characters)", "password", "password", "", "new-password",
          err_field, err_msg);
    field(&h, "Referral code (optional)", "referralCode", "text", code, "off", err_field,
          err_msg);
    html_raw(&h, "<button type=\"submit\">Sign up</button></form>"
                 "<p class=\"muted\">Already have an account? <a href=\"/auth/login\">Log in</a>"
                 "</p></div>");
    page_end(&h, false);
    return send_page(r, status, &h);
}

int web_signup_form(struct req *r)
{
    struct user u;
    if (session_user(r, &u) == 0)
        return see_other(r, "/dashboard");
    const char *ref = req_query(r, "ref");
    char code[CODE_MAX_BYTES] = "";
    if (ref && code_normalize(ref, code, sizeof code) != 0)
        code[0] = '\0';
    return signup_page(r, 200, "", "", code, NULL, NULL);
}

static int signup_again(struct req *r, int e)
{
    char name[FIELD_MAX], email[FIELD_MAX], code[FIELD_MAX];
    form_value(r, "name", name, sizeof name);
    form_value(r, "email", email, sizeof email);
    form_value(r, "referralCode", code, sizeof code);
    const char *msg = r->err_msg[0] ? r->err_msg : err_message(e);
    return signup_page(r, err_status(e) >= 500 ? 503 : 400, name, email, code, r->err_field, msg);
}

static int signup_done(struct req *r)
{
    const struct user *u;
    int e = auth_signup_settle(r, &u);
    return e ? signup_again(r, e) : start_session(r, u);
}

int web_signup_post(struct req *r)
{
    if (!csrf_ok(r)) {
        r->err_field[0] = '\0';
        str_copy(r->err_msg, sizeof r->err_msg,
                 "This form expired. Please submit it again.");
        int e = signup_again(r, TE_FORBIDDEN);
        r->status = 403;
        return e;
    }
    char name[FIELD_MAX], email[FIELD_MAX], password[FIELD_MAX], code[FIELD_MAX];
    form_value(r, "name", name, sizeof name);
    form_value(r, "email", email, sizeof email);
    form_value(r, "password", password, sizeof password);
    form_value(r, "referralCode", code, sizeof code);
    int e = auth_signup_begin(r, name, email, password, code[0] ? code : NULL, NULL, signup_done);
    sodium_memzero(password, sizeof password);
    return e < 0 ? signup_again(r, e) : e;
}

/* ---- log-in ---- */

static int login_page(struct req *r, int status, const char *email, const char *msg)
{
    char csrf[CSRF_HEX + 1];
    csrf_token(r, csrf);
    struct html h;
    html_init(&h);
    page_begin(&h, "Log in", NULL, csrf);
    html_raw(&h, "<h1>Log in</h1><div class=\"card\">");
    if (msg) {
        html_raw(&h, "<p class=\"notice\" id=\"form-error\">");
        html_text(&h, msg);
        html_raw(&h, "</p>");
    }
    html_raw(&h, "<form class=\"stack\" method=\"post\" action=\"/auth/login\" novalidate>"
                 "<input type=\"hidden\" name=\"csrf\" value=\"");
    html_text(&h, csrf);
    html_raw(&h, "\">");
    field(&h, "Email", "email", "email", email, "email", NULL, NULL);
    field(&h, "Password", "password", "password", "", "current-password", NULL, NULL);
    html_raw(&h, "<button type=\"submit\">Log in</button></form><p class=\"muted\">New here? "
                 "<a href=\"/auth/signup\">Create an account</a></p></div>");
    page_end(&h, false);
    return send_page(r, status, &h);
}

int web_login_form(struct req *r)
{
    struct user u;
    if (session_user(r, &u) == 0)
        return see_other(r, "/dashboard");
    return login_page(r, 200, "", NULL);
}

static int login_again(struct req *r, int e)
{
    char email[FIELD_MAX];
    form_value(r, "email", email, sizeof email);
    const char *msg = e == TE_BAD_CREDENTIALS ? err_message(e)
                      : r->err_msg[0]         ? r->err_msg
                                              : err_message(e);
    int status = err_status(e);
    return login_page(r, status == 401 ? 400 : status, email, msg);
}

static int login_done(struct req *r)
{
    const struct user *u;
    int e = auth_login_settle(r, &u);
    return e ? login_again(r, e) : start_session(r, u);
}

int web_login_post(struct req *r)
{
    if (!csrf_ok(r)) {
        str_copy(r->err_msg, sizeof r->err_msg, "This form expired. Please log in again.");
        int e = login_again(r, TE_FORBIDDEN);
        r->status = 403;
        return e;
    }
    char email[FIELD_MAX], password[FIELD_MAX];
    form_value(r, "email", email, sizeof email);
    form_value(r, "password", password, sizeof password);
    int e = auth_login_begin(r, email, password, login_done);
    sodium_memzero(password, sizeof password);
    return e < 0 ? login_again(r, e) : e;
}

int web_logout(struct req *r)
{
    if (!csrf_ok(r))
        return req_fail(r, TE_FORBIDDEN, NULL, "Missing or wrong CSRF token");
    req_add_header(r, "Set-Cookie",
                   SESSION_COOKIE "=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0");
    return see_other(r, "/auth/login");
}

/* ---- dashboard ---- */

static void referral_li(const struct referral_row *row, void *arg)
{
    struct html *h = arg;
    html_raw(h, "<li class=\"referral\" data-referral-id=\"");
    html_text(h, row->id);
    html_raw(h, "\">");
    html_text(h, row->referred_name);
    html_raw(h, " — <span class=\"status\">");
    html_text(h, row->status);
    html_raw(h, "</span></li>");
}

struct earn_totals {
    int64_t by_level[LIMIT_COMMISSION_LEVELS + 1];
};

static void earn_add(const struct ledger_row *e, void *arg)
{
    struct earn_totals *t = arg;
    if (e->level >= 1 && e->level <= LIMIT_COMMISSION_LEVELS)
        t->by_level[e->level] += e->amount;
}

struct reward_ctx {
    struct html *h;
    const char *csrf;
    int n;
};

static void reward_li(const struct reward *rw, void *arg)
{
    struct reward_ctx *c = arg;
    struct html *h = c->h;
    c->n++;
    bool expired = rw->expires_at && rw->expires_at <= now_ms();
    html_raw(h, "<li>");
    html_text(h, strcmp(rw->type, "free_premium") == 0 ? "Free premium" : rw->type);
    html_raw(h, " <span class=\"muted\">");
    html_text(h, rw->value);
    html_raw(h, "</span> ");
    if (rw->claimed) {
        html_raw(h, "<span class=\"muted\">claimed</span>");
    } else if (expired) {
        html_raw(h, "<span class=\"muted\">expired</span>");
    } else {
        html_raw(h, "<form class=\"inline\" method=\"post\" action=\"/dashboard/claim\">"
                    "<input type=\"hidden\" name=\"csrf\" value=\"");
        html_text(h, c->csrf);
        html_raw(h, "\"><input type=\"hidden\" name=\"rewardId\" value=\"");
        html_text(h, rw->id);
        html_raw(h, "\"><button type=\"submit\">Claim</button></form>");
    }
    html_raw(h, "</li>");
}

static void stat(struct html *h, const char *label, const char *key, long long value)
{
    html_raw(h, "<div class=\"stat\"><b");
    if (key)
        html_rawf(h, " data-count=\"%s\"", key);
    html_rawf(h, ">%lld</b><span>", value);
    html_text(h, label);
    html_raw(h, "</span></div>");
}

int web_dashboard(struct req *r)
{
    struct app *app = r->app;
    struct user u;
    int e = session_user(r, &u);
    if (e)
        return e == TE_UNAUTHORIZED ? see_other(r, "/auth/login") : page_error(r, e);
    char csrf[CSRF_HEX + 1];
    csrf_token(r, csrf);
    struct referral_stats st = {0};
    struct wallet wl = {0};
    struct earn_totals et = {{0}};
    int64_t since = 0;
    if ((e = store_referral_stats(app->store, u.id, &st)) ||
        (e = store_wallet_get(app->store, u.id, &wl)) ||
        (e = store_earnings(app->store, u.id, earn_add, &et)) ||
        (e = store_events_max_id(app->store, &since)))
        return page_error(r, e);
    struct html h;
    html_init(&h);
    page_begin(&h, "Dashboard", &u, csrf);
    html_raw(&h, "<h1>Hello, ");
    html_text(&h, u.name);
    html_raw(&h, "</h1><div class=\"card\"><h2>Your referral code</h2>");
    if (u.referral_code[0]) {
        const char *host = req_header(r, "Host");
        char link[600];
        snprintf(link, sizeof link, "%s://%s/r/%s", https(r) ? "https" : "http",
                 host ? host : "localhost", u.referral_code);
        html_raw(&h, "<p><strong id=\"referral-code\">");
        html_text(&h, u.referral_code);
        html_raw(&h, "</strong></p><div class=\"copy\"><input id=\"referral-link\" readonly "
                     "value=\"");
        html_text(&h, link);
        html_raw(&h, "\"><button type=\"button\" id=\"copy-link\">Copy</button></div>");
    } else {
        html_raw(&h, "<p class=\"muted\">You have no active code.</p>");
    }
    html_raw(&h, "</div><div class=\"grid\">");
    stat(&h, "Referrals", "total", (long long)st.total);
    stat(&h, "Pending", "pending", (long long)st.pending);
    stat(&h, "Converted", "converted", (long long)st.converted);
    stat(&h, "Points", "points", (long long)wl.points);
    char money[MONEY_TEXT_MAX];
    money_format(wl.cash_cents, money);
    html_raw(&h, "<div class=\"stat\"><b id=\"balance\">");
    html_text(&h, money);
    html_raw(&h, "</b><span>Wallet (");
    html_text(&h, app->cfg.currency);
    html_raw(&h, ")</span></div></div>");
    html_raw(&h, "<h2>Earnings by level</h2><table><thead><tr><th>Level</th><th>Total</th></tr>"
                 "</thead><tbody>");
    for (int l = 1; l <= app->cfg.commission_levels; l++) {
        money_format(et.by_level[l], money);
        html_rawf(&h, "<tr><td>%d</td><td data-earned=\"%d\">", l, l);
        html_text(&h, money);
        html_raw(&h, "</td></tr>");
    }
    html_raw(&h, "</tbody></table><h2>Live</h2><ul class=\"plain\" id=\"live\" data-since=\"");
    html_rawf(&h, "%lld", (long long)since);
    html_raw(&h, "\"></ul><h2>People you referred</h2><ul class=\"plain\" id=\"referrals\">");
    size_t before = h.len;
    if ((e = store_referrals_of(app->store, u.id, 100, referral_li, &h))) {
        html_release(&h);
        return e;
    }
    if (h.len == before)
        html_raw(&h, "<li id=\"no-referrals\" class=\"muted\">Nobody yet: share your link.</li>");
    html_raw(&h, "</ul><h2>Rewards</h2><ul class=\"plain\" id=\"rewards\">");
    struct reward_ctx rc = {.h = &h, .csrf = csrf};
    if ((e = store_rewards_list(app->store, u.id, reward_li, &rc))) {
        html_release(&h);
        return e;
    }
    if (rc.n == 0)
        html_raw(&h, "<li class=\"muted\">No rewards yet.</li>");
    html_raw(&h, "</ul>");
    page_end(&h, true);
    return send_page(r, 200, &h);
}

int web_claim(struct req *r)
{
    struct app *app = r->app;
    struct user u;
    int e = session_user(r, &u);
    if (e)
        return e == TE_UNAUTHORIZED ? see_other(r, "/auth/login") : page_error(r, e);
    if (!csrf_ok(r))
        return req_fail(r, TE_FORBIDDEN, NULL, "Missing or wrong CSRF token");
    char rid[ID_LEN + 8];
    if (req_form(r, "rewardId", rid, sizeof rid) != 0 || !uuid_valid(rid))
        return see_other(r, "/dashboard");
    uuid_lower(rid);
    struct store_write w = {.op = OP_CLAIM_REWARD};
    str_copy(w.in.claim.user_id, sizeof w.in.claim.user_id, u.id);
    str_copy(w.in.claim.reward_id, sizeof w.in.claim.reward_id, rid);
    store_exec(app->store, &w); /* an already claimed or expired reward shows as such */
    return see_other(r, "/dashboard");
}

/* ---- leaderboard ---- */

int web_leaderboard(struct req *r)
{
    struct app *app = r->app;
    struct user u;
    bool signed_in = session_user(r, &u) == 0;
    const char *period = req_query(r, "period");
    if (!period || (strcmp(period, "month") && strcmp(period, "week")))
        period = "all";
    long long page = 1;
    const char *pv = req_query(r, "page");
    if (pv && config_parse_int(pv, 1, LIMIT_PAGE_MAX, &page))
        page = 1;
    int64_t now = now_ms();
    int64_t since = strcmp(period, "week") == 0    ? now - 7LL * 86400000
                    : strcmp(period, "month") == 0 ? now - 30LL * 86400000
                                                   : 0;
    enum { PER_PAGE = 20 };
    struct lb_row rows[PER_PAGE + 1];
    int n = 0;
    int e = store_leaderboard(app->store, since, PER_PAGE + 1, (int)(page - 1) * PER_PAGE, rows,
                              &n);
    if (e)
        return page_error(r, e);
    char csrf[CSRF_HEX + 1];
    csrf_token(r, csrf);
    struct html h;
    html_init(&h);
    page_begin(&h, "Leaderboard", signed_in ? &u : NULL, csrf);
    html_raw(&h, "<h1>Leaderboard</h1><p class=\"pager\">");
    static const char *const periods[] = {"all", "month", "week"};
    for (int i = 0; i < 3; i++) {
        if (strcmp(period, periods[i]) == 0)
            html_rawf(&h, "<strong>%s</strong>", periods[i]);
        else
            html_rawf(&h, "<a href=\"/referral/leaderboard?period=%s\">%s</a>", periods[i],
                      periods[i]);
    }
    html_raw(&h, "</p><table id=\"leaderboard\"><thead><tr><th>Rank</th><th>Name</th>"
                 "<th>Referrals</th><th>Converted</th></tr></thead><tbody>");
    for (int i = 0; i < n && i < PER_PAGE; i++) {
        html_rawf(&h, "<tr><td>%lld</td><td>", (long long)rows[i].rank);
        html_text(&h, rows[i].name);
        html_rawf(&h, "</td><td>%lld</td><td>%lld</td></tr>", (long long)rows[i].total,
                  (long long)rows[i].converted);
    }
    if (n == 0)
        html_raw(&h, "<tr><td colspan=\"4\" class=\"muted\">No referrals in this period yet."
                     "</td></tr>");
    html_raw(&h, "</tbody></table><p class=\"pager\">");
    if (page > 1)
        html_rawf(&h, "<a href=\"/referral/leaderboard?period=%s&amp;page=%lld\">Previous</a>",
                  period, page - 1);
    if (n > PER_PAGE)
        html_rawf(&h, "<a href=\"/referral/leaderboard?period=%s&amp;page=%lld\">Next</a>",
                  period, page + 1);
    html_raw(&h, "</p>");
    page_end(&h, false);
    return send_page(r, 200, &h);
}

/* ---- admin ---- */

static void chart(struct html *h, const int64_t *signups, const int64_t *conversions, int days,
                  int64_t first_day)
{
    enum { W = 600, H = 220, PAD = 30 };
    int64_t max = 1;
    for (int i = 0; i < days; i++) {
        if (signups[i] > max)
            max = signups[i];
        if (conversions[i] > max)
            max = conversions[i];
    }
    html_rawf(h, "<svg id=\"trend-chart\" viewBox=\"0 0 %d %d\" role=\"img\" "
                 "aria-label=\"Daily sign-ups and conversions\">"
                 "<title>Daily sign-ups and conversions, last %d days</title>",
              W, H, days);
    double step = (double)(W - 2 * PAD) / (days > 1 ? days - 1 : 1);
    const char *colors[2] = {"#2857d6", "#1a9b5b"};
    const int64_t *series[2] = {signups, conversions};
    for (int s = 0; s < 2; s++) {
        html_rawf(h, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"",
                  colors[s]);
        for (int i = 0; i < days; i++) {
            double x = PAD + step * i;
            double y = H - PAD - (double)series[s][i] * (H - 2 * PAD) / (double)max;
            html_rawf(h, "%.1f,%.1f ", x, y);
        }
        html_raw(h, "\"/>");
    }
    html_rawf(h, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#999\"/>", PAD, H - PAD,
              W - PAD, H - PAD);
    html_rawf(h, "<text x=\"4\" y=\"%d\" font-size=\"11\">%lld</text>", PAD, (long long)max);
    for (int i = 0; i < days; i += days > 10 ? days / 5 : 1) {
        char date[ISO_TIME_LEN + 1];
        iso_time((first_day + i) * 86400000, date);
        date[10] = '\0';
        html_rawf(h, "<text x=\"%.1f\" y=\"%d\" font-size=\"10\">%s</text>", PAD + step * i - 20,
                  H - 8, date + 5);
    }
    html_rawf(h, "<text x=\"%d\" y=\"14\" font-size=\"11\" fill=\"%s\">sign-ups</text>"
                 "<text x=\"%d\" y=\"14\" font-size=\"11\" fill=\"%s\">conversions</text></svg>",
              W - 200, colors[0], W - 120, colors[1]);
}

static void log_li(const struct automation_log *l, void *arg)
{
    struct html *h = arg;
    char when[ISO_TIME_LEN + 1];
    iso_time(l->created_at, when);
    html_raw(h, "<tr><td>");
    html_text(h, when);
    html_raw(h, "</td><td>");
    html_text(h, l->service);
    html_raw(h, "</td><td>");
    html_text(h, l->status);
    html_raw(h, "</td><td class=\"muted wrap\">");
    html_text(h, l->error[0] ? l->error : l->details);
    html_raw(h, "</td></tr>");
}

static void delivery_li(const struct delivery *d, void *arg)
{
    struct html *h = arg;
    html_raw(h, "<li>");
    html_text(h, d->event_type);
    html_rawf(h, " — %s, %d attempt%s", d->status, d->attempts, d->attempts == 1 ? "" : "s");
    if (d->last_status_code)
        html_rawf(h, ", HTTP %d", d->last_status_code);
    html_raw(h, "</li>");
}

struct hooks_ctx {
    struct html *h;
    struct store *store;
    int n;
};

static void hook_li(const struct webhook *w, void *arg)
{
    struct hooks_ctx *c = arg;
    c->n++;
    html_raw(c->h, "<div class=\"card\"><strong class=\"wrap\">");
    html_text(c->h, w->url);
    html_raw(c->h, "</strong> <span class=\"muted\">");
    html_text(c->h, w->events);
    html_raw(c->h, w->active ? " · active" : " · disabled");
    html_raw(c->h, "</span><ul class=\"plain\">");
    store_deliveries_list(c->store, w->id, 5, delivery_li, c->h);
    html_raw(c->h, "</ul></div>");
}

int web_admin(struct req *r)
{
    struct app *app = r->app;
    struct user u;
    int e = session_user(r, &u);
    if (e)
        return e == TE_UNAUTHORIZED ? see_other(r, "/auth/login") : page_error(r, e);
    char csrf[CSRF_HEX + 1];
    csrf_token(r, csrf);
    struct html h;
    html_init(&h);
    if (!u.is_admin) {
        page_begin(&h, "Admin", &u, csrf);
        html_raw(&h, "<h1>Admin</h1><p class=\"notice\">This page is for administrators.</p>");
        page_end(&h, false);
        return send_page(r, 403, &h);
    }
    enum { DAYS = 30 };
    struct analytics a;
    int64_t signups[DAYS], conversions[DAYS], today = now_ms() / 86400000;
    if ((e = store_analytics(app->store, 0, now_ms(), &a)) ||
        (e = store_trends(app->store, today - DAYS + 1, DAYS, signups, conversions))) {
        html_release(&h);
        return page_error(r, e);
    }
    page_begin(&h, "Admin", &u, csrf);
    html_raw(&h, "<h1>Programme</h1><div class=\"grid\" id=\"analytics\">");
    stat(&h, "Referrals", NULL, (long long)a.total_referrals);
    stat(&h, "Converted", NULL, (long long)a.converted_referrals);
    html_rawf(&h, "<div class=\"stat\"><b>%lld.%02lld%%</b><span>Conversion rate</span></div>",
              a.total_referrals ? (long long)(a.converted_referrals * 10000 / a.total_referrals / 100) : 0LL,
              a.total_referrals ? (long long)(a.converted_referrals * 10000 / a.total_referrals % 100) : 0LL);
    stat(&h, "Rewards awarded", NULL, (long long)a.rewards_awarded);
    stat(&h, "Active codes", NULL, (long long)a.active_codes);
    stat(&h, "Expired codes", NULL, (long long)a.expired_codes);
    html_raw(&h, "</div><h2>Last 30 days</h2>");
    chart(&h, signups, conversions, DAYS, today - DAYS + 1);
    html_raw(&h, "<h2>Recent automation</h2><div class=\"scroll\"><table id=\"automation-logs\">"
                 "<thead><tr><th>When</th>"
                 "<th>Job</th><th>Status</th><th>Details</th></tr></thead><tbody>");
    store_automation_logs(app->store, NULL, NULL, NULL, 10, log_li, &h);
    html_raw(&h, "</tbody></table></div><h2>Webhooks</h2>");
    struct hooks_ctx hc = {.h = &h, .store = app->store};
    store_webhooks_list(app->store, hook_li, &hc);
    if (hc.n == 0)
        html_raw(&h, "<p class=\"muted\">No webhooks configured.</p>");
    page_end(&h, false);
    return send_page(r, 200, &h);
}
