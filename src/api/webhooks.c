/* Admin webhooks (Standard Webhooks: signed, retried, from the outbox) and the user's own
 * profile fields that messages need (PATCH /api/me). */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "api/app.h"
#include "core/err.h"
#include "domain/validate.h"
#include "notify/dispatch.h"

#define DELIVERIES_PAGE_MAX 100

static const char *const event_types[] = {
    "earning_update",   "points_update", "referral_tracked", "referral_converted",
    "reward_granted",   "bonus_paid",    "purchase_refunded",
};

static json_t *webhook_json(const struct webhook *w, bool with_secret)
{
    json_t *events = json_array();
    if (strcmp(w->events, "*") == 0) {
        json_array_append_new(events, json_string("*"));
    } else {
        char buf[sizeof w->events];
        str_copy(buf, sizeof buf, w->events);
        char *save = NULL;
        for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
            json_array_append_new(events, json_string(t));
    }
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(w->id));
    json_object_set_new(o, "url", json_string(w->url));
    json_object_set_new(o, "events", events);
    json_object_set_new(o, "isActive", json_boolean(w->active));
    json_object_set_new(o, "disabledReason",
                        w->disabled_reason[0] ? json_string(w->disabled_reason) : json_null());
    if (with_secret)
        json_object_set_new(o, "secret", json_string(w->secret));
    json_object_set_new(o, "createdAt", api_time_json(w->created_at));
    json_object_set_new(o, "updatedAt", api_time_json(w->updated_at));
    return o;
}

/* Whether the comma-separated list holds item as a whole entry. */
static bool list_has(const char *list, const char *item)
{
    size_t n = strlen(item);
    for (const char *p = list; (p = strstr(p, item)) != NULL; p += n)
        if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
            return true;
    return false;
}

/* events: a non-empty array of known types (or ["*"]) into "a,b,c", each type once. null
 * counts as absent, as everywhere in the API. */
static int events_field(struct req *r, char *out, size_t cap, bool required, bool *given)
{
    json_t *v = json_object_get(r->body, "events");
    if (json_is_null(v))
        v = NULL;
    *given = v != NULL;
    if (!v) {
        if (required) {
            str_copy(out, cap, "*");
            *given = true;
        }
        return 0;
    }
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > 16)
        return req_fail(r, TE_VALIDATION, "events", "events must be a non-empty array of event "
                                                    "types, or [\"*\"] for all");
    out[0] = '\0';
    size_t i;
    json_t *t;
    json_array_foreach(v, i, t)
    {
        const char *s = json_string_value(t);
        bool known = s && strcmp(s, "*") == 0;
        for (size_t k = 0; s && k < sizeof event_types / sizeof event_types[0]; k++)
            known = known || strcmp(s, event_types[k]) == 0;
        if (!known)
            return req_fail(r, TE_VALIDATION, "events",
                            "unknown event type; use earning_update, points_update, "
                            "referral_tracked, referral_converted, reward_granted, bonus_paid, "
                            "purchase_refunded or *");
        if (strcmp(s, "*") == 0) {
            str_copy(out, cap, "*");
            return 0;
        }
        if (list_has(out, s))
            continue;
        if (out[0])
            strncat(out, ",", cap - strlen(out) - 1);
        strncat(out, s, cap - strlen(out) - 1);
    }
    return 0;
}

static int url_field(struct req *r, char *out, size_t cap, bool required, bool *given)
{
    struct app *app = r->app;
    const char *url = NULL;
    int e = req_str(r, "url", required, &url);
    *given = url != NULL;
    if (e || !url)
        return e;
    char why[200];
    if (webhook_url_check(url, app->cfg.webhook_allow_private, why, sizeof why, NULL, 0) != 0)
        return req_fail(r, TE_VALIDATION, "url", "%s", why);
    if (!str_copy(out, cap, url))
        return req_fail(r, TE_VALIDATION, "url", "url is too long");
    return 0;
}

static int write_webhook(struct req *r, struct store_write *w, int status, bool with_secret)
{
    struct app *app = r->app;
    int e = store_exec(app->store, w);
    sodium_memzero(w->in.webhook.hook.secret, sizeof w->in.webhook.hook.secret);
    if (e == TE_NOT_FOUND)
        return req_fail(r, e, NULL, "No webhook with this id");
    if (e)
        return e;
    json_t *o = webhook_json(&w->out.webhook, with_secret);
    sodium_memzero(w->out.webhook.secret, sizeof w->out.webhook.secret);
    return req_json(r, status, o);
}

int api_webhook_create(struct req *r)
{
    struct store_write w = {.op = OP_WEBHOOK_CREATE};
    bool given;
    int e;
    if ((e = url_field(r, w.in.webhook.hook.url, sizeof w.in.webhook.hook.url, true, &given)) ||
        (e = events_field(r, w.in.webhook.hook.events, sizeof w.in.webhook.hook.events, true,
                          &given)))
        return e;
    unsigned char key[32];
    randombytes_buf(key, sizeof key);
    memcpy(w.in.webhook.hook.secret, "whsec_", 6);
    sodium_bin2base64(w.in.webhook.hook.secret + 6, sizeof w.in.webhook.hook.secret - 6, key,
                      sizeof key, sodium_base64_VARIANT_ORIGINAL);
    sodium_memzero(key, sizeof key);
    return write_webhook(r, &w, 201, true); /* the secret is shown this once */
}

static void add_webhook(const struct webhook *w, void *arg)
{
    json_array_append_new(arg, webhook_json(w, false));
}

int api_webhook_list(struct req *r)
{
    struct app *app = r->app;
    json_t *arr = json_array();
    int e = store_webhooks_list(app->store, add_webhook, arr);
    if (e) {
        json_decref(arr);
        return e;
    }
    return req_json(r, 200, arr);
}

int api_webhook_get(struct req *r)
{
    struct app *app = r->app;
    struct webhook w;
    int e = store_webhook_get(app->store, r->params[0], &w);
    if (e == TE_NOT_FOUND)
        return req_fail(r, e, NULL, "No webhook with this id");
    if (e)
        return e;
    return req_json(r, 200, webhook_json(&w, false));
}

int api_webhook_update(struct req *r)
{
    struct store_write w = {.op = OP_WEBHOOK_UPDATE};
    str_copy(w.in.webhook.hook.id, sizeof w.in.webhook.hook.id, r->params[0]);
    int e;
    if ((e = url_field(r, w.in.webhook.hook.url, sizeof w.in.webhook.hook.url, false,
                       &w.in.webhook.set_url)) ||
        (e = events_field(r, w.in.webhook.hook.events, sizeof w.in.webhook.hook.events, false,
                          &w.in.webhook.set_events)))
        return e;
    json_t *active = json_object_get(r->body, "isActive");
    if (json_is_null(active))
        active = NULL; /* null counts as absent */
    if (active && !json_is_boolean(active))
        return req_fail(r, TE_VALIDATION, "isActive", "isActive must be true or false");
    w.in.webhook.set_active = active != NULL;
    w.in.webhook.hook.active = json_is_true(active);
    return write_webhook(r, &w, 200, false);
}

int api_webhook_delete(struct req *r)
{
    struct app *app = r->app;
    struct store_write w = {.op = OP_WEBHOOK_DELETE};
    str_copy(w.in.webhook.hook.id, sizeof w.in.webhook.hook.id, r->params[0]);
    int e = store_exec(app->store, &w);
    if (e == TE_NOT_FOUND)
        return req_fail(r, e, NULL, "No webhook with this id");
    if (e)
        return e;
    return req_json(r, 200, json_pack("{s:s, s:b}", "id", r->params[0], "deleted", 1));
}

struct deliveries_ctx {
    struct store *store;
    json_t *arr;
};

static void add_attempt(const struct delivery_attempt *a, void *arg)
{
    json_array_append_new(
        arg, json_pack("{s:i, s:o, s:o, s:I, s:o}", "attempt", a->attempt, "statusCode",
                       a->status_code ? json_integer(a->status_code) : json_null(), "error",
                       a->error[0] ? json_string(a->error) : json_null(), "durationMs",
                       (json_int_t)a->duration_ms, "createdAt", api_time_json(a->created_at)));
}

static void add_delivery(const struct delivery *d, void *arg)
{
    struct deliveries_ctx *c = arg;
    json_t *attempts = json_array();
    store_delivery_attempts(c->store, d->id, add_attempt, attempts);
    json_t *o = json_pack("{s:s, s:I, s:s, s:s, s:i, s:o, s:o, s:o, s:o, s:o}", "id", d->id,
                       "eventId", (json_int_t)d->event_id, "eventType", d->event_type, "status",
                       d->status, "attempts", d->attempts, "lastStatusCode",
                       d->last_status_code ? json_integer(d->last_status_code) : json_null(),
                       "lastError", d->last_error[0] ? json_string(d->last_error) : json_null(),
                       "nextAttemptAt",
                       strcmp(d->status, "pending") == 0 ? api_time_json(d->next_attempt_at)
                                                         : json_null(),
                       "createdAt", api_time_json(d->created_at), "updatedAt",
                       api_time_json(d->updated_at));
    if (o)
        json_object_set_new(o, "attemptLog", attempts);
    else
        json_decref(attempts);
    json_array_append_new(c->arr, o);
}

int api_webhook_deliveries(struct req *r)
{
    struct app *app = r->app;
    struct webhook w;
    long long limit;
    int e = store_webhook_get(app->store, r->params[0], &w);
    if (e == TE_NOT_FOUND)
        return req_fail(r, e, NULL, "No webhook with this id");
    if (e || (e = api_query_int(r, "limit", 1, DELIVERIES_PAGE_MAX, 50, &limit)))
        return e;
    json_t *arr = json_array();
    struct deliveries_ctx dc = {.store = app->store, .arr = arr};
    if ((e = store_deliveries_list(app->store, r->params[0], (int)limit, add_delivery, &dc))) {
        json_decref(arr);
        return e;
    }
    return req_json(r, 200, arr);
}

/* A phone number in E.164: "+" then 8 to 15 digits. */
bool api_phone_valid(const char *s)
{
    size_t n = strlen(s);
    if (n < 9 || n > 16 || s[0] != '+' || s[1] == '0')
        return false;
    for (size_t i = 1; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

int api_me_update(struct req *r)
{
    struct app *app = r->app;
    struct store_write w = {.op = OP_USER_UPDATE};
    str_copy(w.in.user_update.user_id, sizeof w.in.user_update.user_id, r->who.user.id);
    const char *name = NULL, *why;
    int e;
    if ((e = req_str(r, "name", false, &name)))
        return e;
    if (name && validate_name(name, w.in.user_update.name, sizeof w.in.user_update.name, &why))
        return req_fail(r, TE_VALIDATION, "name", "name %s", why);
    json_t *phone = json_object_get(r->body, "phone");
    if (phone && json_is_null(phone)) {
        w.in.user_update.clear_phone = true;
    } else if (phone) {
        if (!json_is_string(phone) || !api_phone_valid(json_string_value(phone)))
            return req_fail(r, TE_VALIDATION, "phone",
                            "phone must be an E.164 number such as +14155550100, or null");
        str_copy(w.in.user_update.phone, sizeof w.in.user_update.phone, json_string_value(phone));
    }
    if ((e = store_exec(app->store, &w)))
        return e;
    struct user u;
    if ((e = store_user_get(app->store, r->who.user.id, &u)))
        return e;
    return req_json(r, 200, api_user_json(&u));
}
