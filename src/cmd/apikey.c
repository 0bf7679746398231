/* tally apikey create|list|revoke: keys for server-to-server callers. */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "core/err.h"
#include "security/apikey.h"
#include "store/store.h"

static void print_key(const struct apikey *k, void *arg)
{
    (void)arg;
    char scopes[32], created[ISO_TIME_LEN + 1], revoked[ISO_TIME_LEN + 1] = "-";
    apikey_format_scopes(k->scopes, scopes, sizeof scopes);
    iso_time(k->created_at, created);
    if (k->revoked_at)
        iso_time(k->revoked_at, revoked);
    printf("%-36s  %-16s  %-14s  %-24s  %-24s  %s\n", k->id, k->prefix, scopes, created, revoked,
           k->name);
}

int cmd_apikey(int argc, char **argv)
{
    struct opt opts[] = {
        {"--db", "PATH|URL", "a file or postgres:// URL (env TALLY_DB; default ./tally.db)", 0},
        {"--name", "NAME", "create: what the key is for (e.g. \"shop till 4\")", 0},
        {"--scopes", "LIST", "create: comma-separated scopes: admin, pos, app", 0},
        {"--retailer", "ID", "create: bind a pos key to one retailer", 0},
        {0},
    };
    const char *pos[2];
    int n_pos;
    bool help;
    if (cli_parse(argc, argv, 2, opts, pos, 2, &n_pos, &help))
        return 2;
    if (help || n_pos == 0) {
        cli_usage("tally apikey create --name NAME --scopes admin,pos,app [--db PATH|URL]\n"
                  "       tally apikey list [--db PATH|URL]\n"
                  "       tally apikey revoke ID|PREFIX [--db PATH|URL]",
                  "Manage API keys. A key is shown once, as the last line of 'create'; only its "
                  "SHA-256 is stored. Callers send it as 'Authorization: Bearer <key>'.",
                  opts);
        return help ? 0 : 2;
    }
    struct config c;
    char shown[sizeof c.db]; /* the database as shown: without its password */
    if (cli_config(&c, opts))
        return 2;
    struct store *s;
    if (store_open(c.db, &s)) {
        fprintf(stderr, "tally: cannot open database %s\n",
                store_url_display(c.db, shown, sizeof shown));
        return 1;
    }
    int rc = 0;
    if (strcmp(pos[0], "create") == 0) {
        const char *name = opts[1].value, *scopes = opts[2].value, *retailer = opts[3].value;
        struct store_write w = {.op = OP_APIKEY_CREATE};
        if (!name || !*name || strlen(name) > 100) {
            fprintf(stderr, "tally: --name is required (at most 100 bytes)\n");
            rc = 2;
            goto out;
        }
        if (!scopes || apikey_parse_scopes(scopes, &w.in.apikey_create.scopes)) {
            fprintf(stderr, "tally: --scopes must list one or more of admin, pos, app\n");
            rc = 2;
            goto out;
        }
        if (retailer && !str_copy(w.in.apikey_create.retailer_id,
                                  sizeof w.in.apikey_create.retailer_id, retailer)) {
            fprintf(stderr, "tally: --retailer is not a retailer id\n");
            rc = 2;
            goto out;
        }
        if (retailer) { /* as POST /api/admin/retailers/:id/api-keys: a till of a real shop */
            struct retailer rt;
            int e = store_retailer_get(s, retailer, &rt);
            if (e || !rt.active) {
                fprintf(stderr, "tally: %s\n",
                        e == TE_RETAILER_NOT_FOUND ? "no retailer with that id"
                        : e ? "could not read the retailer"
                            : "that retailer is deactivated");
                rc = 1;
                goto out;
            }
        }
        char key[APIKEY_LEN + 1];
        str_copy(w.in.apikey_create.name, sizeof w.in.apikey_create.name, name);
        apikey_generate(key, w.in.apikey_create.key_hash, w.in.apikey_create.prefix);
        if (store_exec(s, &w)) {
            fprintf(stderr, "tally: could not store the key\n");
            rc = 1;
        } else {
            printf("created API key %s (%s) with scopes %s\n", w.out.apikey.id, name, scopes);
            printf("store it now; it is not shown again:\n%s\n", key);
        }
        sodium_memzero(key, sizeof key);
    } else if (strcmp(pos[0], "list") == 0) {
        printf("%-36s  %-16s  %-14s  %-24s  %-24s  %s\n", "ID", "PREFIX", "SCOPES", "CREATED",
               "REVOKED", "NAME");
        rc = store_apikey_list(s, print_key, NULL) ? 1 : 0;
    } else if (strcmp(pos[0], "revoke") == 0) {
        if (n_pos < 2) {
            fprintf(stderr, "tally: apikey revoke needs the key's ID or prefix\n");
            rc = 2;
            goto out;
        }
        struct store_write w = {.op = OP_APIKEY_REVOKE};
        str_copy(w.in.apikey_revoke.id_or_prefix, sizeof w.in.apikey_revoke.id_or_prefix, pos[1]);
        int e = store_exec(s, &w);
        if (e == TE_NOT_FOUND) {
            fprintf(stderr, "tally: no active key with id or prefix %s\n", pos[1]);
            rc = 1;
        } else if (e) {
            rc = 1;
        } else {
            printf("revoked %s\n", pos[1]);
        }
    } else {
        fprintf(stderr, "tally: unknown apikey action \"%s\" (create, list, revoke)\n", pos[0]);
        rc = 2;
    }
out:
    store_close(s);
    return rc;
}
