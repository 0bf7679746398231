/* Server-rendered web pages (seed 004): sign-up, log-in, dashboard, leaderboard and admin.
 * Sessions are an HttpOnly, SameSite=Lax cookie holding the user's token; every form carries a
 * CSRF token matched against a SameSite=Strict cookie; all user text is escaped; every page is
 * sent with a Content-Security-Policy that allows only this origin. */
#ifndef TALLY_WEB_H
#define TALLY_WEB_H

#include "http/http.h"

extern const char web_css[];
extern const char web_js[];

int web_root(struct req *r);
int web_signup_form(struct req *r);
int web_signup_post(struct req *r);
int web_login_form(struct req *r);
int web_login_post(struct req *r);
int web_logout(struct req *r);
int web_dashboard(struct req *r);
int web_claim(struct req *r);
int web_leaderboard(struct req *r);
int web_admin(struct req *r);
int web_asset_css(struct req *r);
int web_asset_js(struct req *r);

#endif
