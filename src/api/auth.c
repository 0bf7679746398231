/* Sign-up, log-in and the signed-in user.
 *
 * Both sign-up and log-in cost one Argon2id computation (~90 ms, 64 MiB). It runs on the hash
 * pool (app->hashq), not on an HTTP thread: the request is suspended, the pool hashes, the
 * writer commits (sign-up), and the request resumes to answer. The pool's bound is the bound on
 * memory spent hashing; when its queue is full the caller gets 503 rather than a slow death. */
#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "core/err.h"
#include "domain/code.h"
#include "domain/validate.h"
#include "security/password.h"
#include "security/token.h"

struct auth_ctx {
    struct work work;
    struct store_write w;
    struct req *r;
    struct app *app;
    char password[4 * LIMIT_PASSWORD_MAX + 1];
    struct user user; /* login: the account found by email */
    bool found;
    bool ok;
    int rc;
};

static void auth_ctx_free(void *p)
{
    struct auth_ctx *c = p;
    sodium_memzero(c->password, sizeof c->password);
    free(c);
}

static struct auth_ctx *ctx_new(struct req *r)
{
    struct auth_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->r = r;
    c->app = r->app;
    r->ctx = c;
    r->ctx_free = auth_ctx_free;
    return c;
}

char *auth_token_for(struct req *r, const struct user *u)
{
    struct app *app = r->app;
    return token_issue(app->jwt_secret, app->jwt_secret_len, u->id, now_ms() / 1000,
                       app->cfg.jwt_ttl_s);
}

static int token_response(struct req *r, int status, const struct user *u)
{
    struct app *app = r->app;
    char *tok = auth_token_for(r, u);
    if (!tok)
        return TE_NOMEM;
    json_t *o = json_object();
    json_object_set_new(o, "token", json_string(tok));
    json_object_set_new(o, "tokenType", json_string("Bearer"));
    json_object_set_new(o, "expiresIn", json_integer(app->cfg.jwt_ttl_s));
    json_object_set_new(o, "user", api_user_json(u));
    sodium_memzero(tok, strlen(tok));
    free(tok);
    return req_json(r, status, o);
}

/* Hand ctx to the hash pool; on refusal, answer 503 through the normal resume path. */
static int start_hashing(struct req *r, struct auth_ctx *c, void (*run)(struct work *),
                         handler_fn next)
{
    c->work.run = run;
    req_suspend(r, next);
    int e = workq_submit(c->app->hashq, &c->work);
    if (e) {
        c->rc = e;
        req_resume(r);
    }
    return HTTP_ASYNC;
}

/* ---- sign-up ---- */

static void signup_committed(struct store_write *w)
{
    struct auth_ctx *c = w->arg;
    c->rc = w->rc;
    req_resume(c->r); /* last touch of c on this thread */
}

static void signup_hash(struct work *wk)
{
    struct auth_ctx *c = (struct auth_ctx *)wk;
    int e = password_hash(c->password, c->w.in.signup.password_hash,
                          sizeof c->w.in.signup.password_hash);
    sodium_memzero(c->password, sizeof c->password);
    if (e == 0) {
        c->w.done = signup_committed;
        c->w.arg = c;
        e = store_submit(c->app->store, &c->w);
        if (e == 0)
            return;
    }
    c->rc = e;
    req_resume(c->r);
}

int auth_signup_settle(struct req *r, const struct user **user)
{
    struct auth_ctx *c = r->ctx;
    struct app *app = r->app;
    if (c->rc == TE_CODE_INVALID || c->rc == TE_CODE_EXPIRED || c->rc == TE_CODE_INACTIVE)
        return req_fail(r, c->rc, "referralCode", "%s", err_message(c->rc));
    if (c->rc == TE_EMAIL_TAKEN)
        return req_fail(r, c->rc, "email", "%s", err_message(c->rc));
    if (c->rc)
        return c->rc;
    if (c->w.out.signup.referral_id[0])
        atomic_fetch_add(&app->referral_gen, 1);
    *user = &c->w.out.signup.user;
    return 0;
}

static int signup_finish(struct req *r)
{
    const struct user *u;
    int e = auth_signup_settle(r, &u);
    return e ? e : token_response(r, 201, u);
}

int api_auth_signup(struct req *r)
{
    const char *name = NULL, *email = NULL, *password = NULL, *code = NULL, *phone = NULL;
    int e;
    if ((e = req_str(r, "name", true, &name)) || (e = req_str(r, "email", true, &email)) ||
        (e = req_str(r, "password", true, &password)) ||
        (e = req_str(r, "referralCode", false, &code)) || (e = req_str(r, "phone", false, &phone)))
        return e;
    return auth_signup_begin(r, name, email, password, code, phone, signup_finish);
}

int auth_signup_begin(struct req *r, const char *name, const char *email, const char *password,
                      const char *code, const char *phone, handler_fn finish)
{
    struct app *app = r->app;
    const char *why;
    int e;
    if (phone && *phone && !api_phone_valid(phone))
        return req_fail(r, TE_VALIDATION, "phone",
                        "phone must be an E.164 number such as +14155550100");
    struct auth_ctx *c = ctx_new(r);
    if (!c)
        return TE_NOMEM;
    struct store_write *w = &c->w;
    w->op = OP_SIGNUP;
    if (validate_name(name, w->in.signup.name, sizeof w->in.signup.name, &why))
        return req_fail(r, TE_VALIDATION, "name", "name %s", why);
    if (validate_email(email, w->in.signup.email, sizeof w->in.signup.email, &why))
        return req_fail(r, TE_VALIDATION, "email", "email %s", why);
    if (validate_password(password, &why))
        return req_fail(r, TE_VALIDATION, "password", "password %s", why);
    /* Codes are trimmed, and an empty code means none: so does one of only spaces. */
    while (code && isspace((unsigned char)*code))
        code++;
    if (code && *code) {
        if (!app->cfg.referral_enabled)
            return TE_DISABLED;
        if (code_normalize(code, w->in.signup.referral_code, sizeof w->in.signup.referral_code))
            return req_fail(r, TE_CODE_INVALID, "referralCode", "Referral code is unknown");
        /* Check the code before paying for a hash; the writer checks again, atomically. */
        struct ref_code rc;
        e = store_code_get(app->store, w->in.signup.referral_code, &rc);
        if (e == 0 && !rc.active)
            e = TE_CODE_INACTIVE;
        else if (e == 0 && rc.expires_at <= now_ms())
            e = TE_CODE_EXPIRED;
        if (e)
            return req_fail(r, e, "referralCode", "%s", err_message(e));
    }
    struct user existing;
    e = store_user_by_email(app->store, w->in.signup.email, &existing);
    if (e == 0)
        return req_fail(r, TE_EMAIL_TAKEN, "email", "%s", err_message(TE_EMAIL_TAKEN));
    if (e != TE_USER_NOT_FOUND)
        return e;
    if (phone)
        str_copy(w->in.signup.phone, sizeof w->in.signup.phone, phone);
    w->in.signup.code_length = app->cfg.code_length;
    w->in.signup.code_ttl_ms = (int64_t)app->cfg.code_expiry_days * 86400000;
    str_copy(c->password, sizeof c->password, password);
    return start_hashing(r, c, signup_hash, finish);
}

/* ---- log-in ---- */

static void login_verify(struct work *wk)
{
    struct auth_ctx *c = (struct auth_ctx *)wk;
    if (c->found)
        c->ok = password_verify(c->user.password_hash, c->password);
    else
        password_dummy_verify(c->password); /* same cost: no email enumeration by timing */
    sodium_memzero(c->password, sizeof c->password);
    req_resume(c->r);
}

static void throttle_keys(struct req *r, const char *email, char *acct, size_t acap, char *addr,
                          size_t dcap)
{
    snprintf(acct, acap, "acct:%s", email);
    snprintf(addr, dcap, "addr:%s", r->client_addr);
}

int auth_login_settle(struct req *r, const struct user **user)
{
    struct auth_ctx *c = r->ctx;
    struct app *app = r->app;
    if (c->rc)
        return c->rc;
    char acct[EMAIL_MAX_BYTES + 8], addr[80];
    throttle_keys(r, c->w.in.signup.email, acct, sizeof acct, addr, sizeof addr);
    int64_t now = now_ms();
    if (!c->ok) {
        throttle_fail(app->login_account, acct, now);
        throttle_fail(app->login_address, addr, now);
        return TE_BAD_CREDENTIALS;
    }
    throttle_reset(app->login_account, acct);
    *user = &c->user;
    return 0;
}

static int login_finish(struct req *r)
{
    const struct user *u;
    int e = auth_login_settle(r, &u);
    return e ? e : token_response(r, 200, u);
}

int api_auth_login(struct req *r)
{
    const char *email = NULL, *password = NULL;
    int e;
    if ((e = req_str(r, "email", true, &email)) || (e = req_str(r, "password", true, &password)))
        return e;
    return auth_login_begin(r, email, password, login_finish);
}

int auth_login_begin(struct req *r, const char *email, const char *password, handler_fn finish)
{
    struct app *app = r->app;
    const char *why;
    int e;
    struct auth_ctx *c = ctx_new(r);
    if (!c)
        return TE_NOMEM;
    /* A malformed email cannot match an account: same answer as a wrong password. */
    char *norm = c->w.in.signup.email;
    if (validate_email(email, norm, sizeof c->w.in.signup.email, &why))
        norm[0] = '\0';
    if (strlen(password) > 4 * LIMIT_PASSWORD_MAX)
        return TE_BAD_CREDENTIALS;
    char acct[EMAIL_MAX_BYTES + 8], addr[80];
    throttle_keys(r, norm, acct, sizeof acct, addr, sizeof addr);
    int64_t now = now_ms();
    int wait_a = throttle_check(app->login_account, acct, now);
    int wait_b = throttle_check(app->login_address, addr, now);
    if (wait_a || wait_b) {
        r->retry_after_s = wait_a > wait_b ? wait_a : wait_b;
        return req_fail(r, TE_RATE_LIMITED, NULL,
                        "Too many failed log-in attempts; retry in %d seconds", r->retry_after_s);
    }
    if (norm[0]) {
        e = store_user_by_email(app->store, norm, &c->user);
        if (e == 0)
            c->found = true;
        else if (e != TE_USER_NOT_FOUND)
            return e;
    }
    str_copy(c->password, sizeof c->password, password);
    return start_hashing(r, c, login_verify, finish);
}

int api_me_get(struct req *r)
{
    return req_json(r, 200, api_user_json(&r->who.user));
}
