/* Promotion choice (see promo.h). Dates compare as strings: "YYYY-MM-DD" sorts by time. */
#include "domain/promo.h"

#include <string.h>

static bool covers(const struct promo *p, const char *retailer_id, const char *region,
                   const char *date)
{
    if (!p->active)
        return false;
    bool by_retailer = p->retailer_id[0] && retailer_id && strcmp(p->retailer_id, retailer_id) == 0;
    bool by_region = !p->retailer_id[0] && p->region[0] && region && region[0] &&
                     strcmp(p->region, region) == 0;
    if (!by_retailer && !by_region)
        return false;
    return strcmp(p->start_date, date) <= 0 && strcmp(date, p->end_date) <= 0;
}

static bool better(const struct promo *a, const struct promo *b)
{
    if (a->version != b->version)
        return a->version > b->version;
    bool ar = a->retailer_id[0] != '\0', br = b->retailer_id[0] != '\0';
    if (ar != br)
        return ar;
    if (a->created_at != b->created_at)
        return a->created_at > b->created_at;
    return strcmp(a->id, b->id) > 0;
}

int promo_choose(const struct promo *c, int n, const char *retailer_id, const char *region,
                 const char *local_date)
{
    int best = -1;
    for (int i = 0; i < n; i++) {
        if (!covers(&c[i], retailer_id, region, local_date))
            continue;
        if (best < 0 || better(&c[i], &c[best]))
            best = i;
    }
    return best;
}

bool promo_date_valid(const char *s)
{
    if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return false;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
            return false;
    int y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    int m = (s[5] - '0') * 10 + (s[6] - '0');
    int d = (s[8] - '0') * 10 + (s[9] - '0');
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1970 || m < 1 || m > 12 || d < 1)
        return false;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    int max = mdays[m - 1] + (m == 2 && leap);
    return d <= max;
}
