/* One list of error codes: each has its HTTP status, its public code and its message.
 * Functions return 0 or a negative TE_* value; only http/respond turns one into a response. */
#ifndef TALLY_ERR_H
#define TALLY_ERR_H

#define TALLY_ERRORS(X)                                                                        \
    X(TE_INTERNAL, 500, "internal_error", "An internal error occurred")                         \
    X(TE_NOMEM, 500, "internal_error", "Out of memory")                                         \
    X(TE_DB, 500, "internal_error", "Database error")                                           \
    X(TE_UNAVAILABLE, 503, "unavailable", "The server is busy; retry shortly")                  \
    X(TE_INVALID_JSON, 400, "invalid_json", "Request body is not valid JSON")                   \
    X(TE_VALIDATION, 400, "validation_error", "A field is invalid")                             \
    X(TE_UNAUTHORIZED, 401, "unauthorized", "Missing or invalid credentials")                   \
    X(TE_BAD_CREDENTIALS, 401, "invalid_credentials", "Email or password is incorrect")         \
    X(TE_FORBIDDEN, 403, "forbidden", "You may not do this")                                    \
    X(TE_NOT_FOUND, 404, "not_found", "Not found")                                              \
    X(TE_ROUTE_NOT_FOUND, 404, "route_not_found", "No such endpoint")                           \
    X(TE_USER_NOT_FOUND, 404, "user_not_found", "User not found")                               \
    X(TE_METHOD, 405, "method_not_allowed", "Method not allowed on this endpoint")              \
    X(TE_EMAIL_TAKEN, 409, "email_taken", "An account with this email already exists")          \
    X(TE_CODE_EXISTS, 409, "active_code_exists", "You already have an active referral code")    \
    X(TE_ALREADY_REFERRED, 409, "already_referred", "This user already has a referrer")         \
    X(TE_CODE_INVALID, 400, "invalid_referral_code", "Referral code is unknown")                \
    X(TE_CODE_EXPIRED, 400, "referral_code_expired", "Referral code has expired")               \
    X(TE_CODE_INACTIVE, 400, "referral_code_inactive", "Referral code is no longer active")     \
    X(TE_SELF_REFERRAL, 400, "self_referral", "You cannot use your own referral code")          \
    X(TE_REFERRAL_CYCLE, 400, "referral_cycle", "This referral would create a cycle")           \
    X(TE_TOO_LARGE, 413, "payload_too_large", "Request body is too large")                      \
    X(TE_UNPROCESSABLE, 422, "unprocessable", "The request cannot be processed")                \
    X(TE_RATE_LIMITED, 429, "rate_limited", "Too many attempts; retry later")                   \
    X(TE_DISABLED, 404, "referral_system_disabled", "The referral system is disabled")         \
    X(TE_RETAILER_NOT_FOUND, 404, "retailer_not_found", "Retailer not found")                   \
    X(TE_PRODUCT_NOT_FOUND, 404, "product_not_found", "Product not found")                      \
    X(TE_PURCHASE_NOT_FOUND, 404, "purchase_not_found", "Purchase not found")                   \
    X(TE_ITEM_NOT_FOUND, 404, "item_not_found", "Catalogue item not found")                     \
    X(TE_REWARD_NOT_FOUND, 404, "reward_not_found", "Reward not found or already claimed")      \
    X(TE_REFERRAL_NOT_FOUND, 404, "referral_not_found", "This user was not referred")           \
    X(TE_REWARD_EXPIRED, 400, "reward_expired", "This reward has expired")                      \
    X(TE_IDEMPOTENCY_MISMATCH, 409, "idempotency_mismatch",                                    \
      "This transaction id was already used with different content")                          \
    X(TE_INSUFFICIENT_POINTS, 409, "insufficient_points", "Not enough points")                  \
    X(TE_OUT_OF_STOCK, 409, "out_of_stock", "This item is out of stock")                        \
    X(TE_REFUND_EXCEEDS, 409, "refund_exceeds_purchase",                                       \
      "The refund exceeds what remains of the purchase")                                       \
    X(TE_CONFLICT, 409, "conflict", "A record with these values already exists")                \
    X(TE_INACTIVE, 422, "inactive", "This record is deactivated")                               \
    X(TE_RETRY, 503, "unavailable", "The database asked for a retry; retry shortly")           \
    X(TE_COMMIT_UNKNOWN, 503, "commit_unknown",                                               \
      "The outcome of this write is unknown; retry it with the same idempotency key")

enum tally_err {
    TE_OK = 0,
    TE__BASE = -1000,
#define X(name, status, code, msg) name,
    TALLY_ERRORS(X)
#undef X
    TE__END
};

/* Status, public code and message of an error; unknown values map to TE_INTERNAL. */
int err_status(int e);
const char *err_code(int e);
const char *err_message(int e);

#endif
