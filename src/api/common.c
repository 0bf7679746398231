/* What every handler shares: authentication of the caller and the JSON shape of a user. */
#include <string.h>
#include <strings.h>

#include "api/app.h"
#include "core/err.h"
#include "domain/money.h"
#include "security/apikey.h"
#include "security/token.h"

json_t *api_time_json(int64_t ms)
{
    if (ms <= 0)
        return json_null();
    char buf[ISO_TIME_LEN + 1];
    iso_time(ms, buf);
    return json_string(buf);
}

json_t *api_user_json(const struct user *u)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(u->id));
    json_object_set_new(o, "name", json_string(u->name));
    json_object_set_new(o, "email", json_string(u->email));
    json_object_set_new(o, "referralCode",
                        u->referral_code[0] ? json_string(u->referral_code) : json_null());
    json_object_set_new(o, "referredBy",
                        u->referred_by[0] ? json_string(u->referred_by) : json_null());
    json_object_set_new(o, "phone", u->phone[0] ? json_string(u->phone) : json_null());
    json_object_set_new(o, "isAdmin", json_boolean(u->is_admin));
    json_object_set_new(o, "premiumUntil", api_time_json(u->premium_until));
    json_object_set_new(o, "createdAt", api_time_json(u->created_at));
    return o;
}

bool api_is_admin(const struct req *r)
{
    return (r->who.is_key && (r->who.key.scopes & SCOPE_ADMIN)) ||
           (r->who.is_user && r->who.user.is_admin);
}

static unsigned key_grants(unsigned scopes)
{
    unsigned g = 0;
    if (scopes & SCOPE_ADMIN)
        g |= AUTH_KEY_ADMIN;
    if (scopes & SCOPE_POS)
        g |= AUTH_KEY_POS;
    if (scopes & SCOPE_APP)
        g |= AUTH_KEY_APP;
    return g;
}

int api_authenticate(struct req *r, unsigned need)
{
    struct app *app = r->app;
    const char *h = req_header(r, "Authorization");
    if (!h)
        return req_fail(r, TE_UNAUTHORIZED, NULL, "Authorization: Bearer <token> is required");
    if (strncasecmp(h, "Bearer ", 7) != 0)
        return req_fail(r, TE_UNAUTHORIZED, NULL, "Authorization must use the Bearer scheme");
    const char *cred = h + 7;
    while (*cred == ' ')
        cred++;
    memset(&r->who, 0, sizeof r->who);
    if (apikey_looks_like(cred)) {
        char hash[65];
        apikey_hash(cred, hash);
        int e = store_apikey_by_hash(app->store, hash, &r->who.key);
        if (e == TE_UNAUTHORIZED)
            return req_fail(r, e, NULL, "API key is unknown or revoked");
        if (e)
            return e;
        r->who.is_key = true;
        if (key_grants(r->who.key.scopes) & need)
            return 0;
        return req_fail(r, TE_FORBIDDEN, NULL, "This API key's scopes do not allow this endpoint");
    }
    char uid[ID_LEN + 1];
    if (token_verify(app->jwt_secret, app->jwt_secret_len, cred, now_ms() / 1000, uid,
                     sizeof uid))
        return req_fail(r, TE_UNAUTHORIZED, NULL, "Token is invalid or expired");
    int e = store_user_get(app->store, uid, &r->who.user);
    if (e == TE_USER_NOT_FOUND)
        return req_fail(r, TE_UNAUTHORIZED, NULL, "Token is invalid or expired");
    if (e)
        return e;
    r->who.is_user = true;
    if (need & AUTH_USER)
        return 0;
    if ((need & AUTH_ADMIN_USER) && r->who.user.is_admin)
        return 0;
    return req_fail(r, TE_FORBIDDEN, NULL, "Signed-in users may not call this endpoint");
}

json_t *api_money_json(int64_t cents)
{
    char buf[MONEY_TEXT_MAX];
    money_format(cents, buf);
    return json_string(buf);
}

int api_money_field(struct req *r, const char *field, int64_t max_cents, int64_t *cents,
                    bool *present)
{
    json_t *v = r->body ? json_object_get(r->body, field) : NULL;
    *present = v && !json_is_null(v);
    if (!*present)
        return 0;
    int e;
    if (json_is_string(v))
        e = money_parse(json_string_value(v), max_cents, cents);
    else if (json_is_integer(v))
        e = json_integer_value(v) < 0 || json_integer_value(v) > max_cents / 100
                ? (json_integer_value(v) < 0 ? MONEY_BAD_FORMAT : MONEY_TOO_LARGE)
                : (*cents = json_integer_value(v) * 100, MONEY_OK);
    else if (json_is_real(v))
        e = money_from_json_real(json_real_value(v), max_cents, cents);
    else
        e = MONEY_BAD_FORMAT;
    char maxs[MONEY_TEXT_MAX];
    money_format(max_cents, maxs);
    if (e == MONEY_TOO_PRECISE)
        return req_fail(r, TE_VALIDATION, field, "%s must have at most 2 decimal places", field);
    if (e == MONEY_TOO_LARGE)
        return req_fail(r, TE_VALIDATION, field, "%s must be at most %s", field, maxs);
    if (e || *cents <= 0)
        return req_fail(r, TE_VALIDATION, field,
                        "%s must be a positive amount such as 12.34 (a JSON number or a decimal "
                        "string)",
                        field);
    return 0;
}

int api_id_field(struct req *r, const char *field, bool required, const char **out)
{
    *out = NULL;
    json_t *v = r->body ? json_object_get(r->body, field) : NULL;
    if (!v || json_is_null(v)) {
        if (required)
            return req_fail(r, TE_VALIDATION, field, "%s is required", field);
        return 0;
    }
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > ID_LEN)
        return req_fail(r, TE_VALIDATION, field, "%s must be an id string", field);
    *out = json_string_value(v);
    if (uuid_valid(*out)) {
        /* A UUID's hex digits are case-insensitive (RFC 9562); the store keeps lower case. */
        char low[ID_LEN + 1];
        str_copy(low, sizeof low, *out);
        uuid_lower(low);
        if (strcmp(low, *out) != 0) {
            json_t *s = json_string(low);
            if (!s || json_object_set_new(r->body, field, s))
                return TE_NOMEM;
            *out = json_string_value(json_object_get(r->body, field));
        }
    }
    return 0;
}

int api_query_int(struct req *r, const char *name, long long min, long long max, long long def,
                  long long *out)
{
    const char *v = req_query(r, name);
    *out = def;
    if (!v)
        return 0;
    if (config_parse_int(v, min, max, out))
        return req_fail(r, TE_VALIDATION, name, "%s must be an integer from %lld to %lld", name,
                        min, max);
    return 0;
}

int api_period(struct req *r, int64_t now, const char **name, int64_t *since)
{
    const char *p = req_query(r, "period");
    if (!p || strcmp(p, "all") == 0) { /* "period=" is given, and none of the three */
        *name = "all";
        *since = 0;
    } else if (strcmp(p, "month") == 0) {
        *name = "month";
        *since = now - 30LL * 86400000;
    } else if (strcmp(p, "week") == 0) {
        *name = "week";
        *since = now - 7LL * 86400000;
    } else {
        return req_fail(r, TE_VALIDATION, "period", "period must be one of all, month, week");
    }
    return 0;
}
