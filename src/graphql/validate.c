/* Validation (spec section 5) as one walk per concern over the AST. The rules and their
 * messages follow graphql-js's specifiedRules; see validate.h.
 *
 * Order: document-level rules first (names, anonymous operations, fragment cycles), then the
 * cost limits (which expand fragments, so only once no cycle exists), and only then the walks
 * that follow fragment spreads: a fragment bomb is refused before anything expands it. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graphql/schema.h"
#include "graphql/validate.h"
#include "graphql/values.h"

#define MSG_MAX 512

struct vctx {
    const struct gql_document *doc;
    json_t *errors;
    int n;
    bool full;   /* the error limit was reached */
    bool cycles; /* fragments spread themselves: rules that expand fragments stay away */
    long budget; /* field comparisons left for OverlappingFieldsCanBeMerged */
};

static json_t *loc_json(struct gql_location l)
{
    return json_pack("{s:i, s:i}", "line", (int)l.line, "column", (int)l.column);
}

/* An error with one or two locations (b.line == 0: none). */
static void verr(struct vctx *v, struct gql_location a, struct gql_location b, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void verr(struct vctx *v, struct gql_location a, struct gql_location b, const char *fmt, ...)
{
    if (v->full)
        return;
    if (v->n >= GQL_VALIDATE_ERRORS_MAX) {
        json_array_append_new(v->errors,
                              json_pack("{s:s}", "message",
                                        "Too many validation errors, error limit reached. "
                                        "Validation aborted."));
        v->n++;
        v->full = true;
        return;
    }
    char msg[MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *e = json_pack("{s:o}", "message", gql_message_json(msg));
    if (a.line) {
        json_t *locs = json_array();
        json_array_append_new(locs, loc_json(a));
        if (b.line)
            json_array_append_new(locs, loc_json(b));
        json_object_set_new(e, "locations", locs);
    }
    json_array_append_new(v->errors, e);
    v->n++;
}

static const struct gql_location NOLOC = {0, 0};

static const struct gql_definition *fragment_find(const struct gql_document *doc, const char *name)
{
    for (const struct gql_definition *d = doc->definitions; d; d = d->next)
        if (d->kind == GQL_DEFINITION_FRAGMENT && strcmp(d->name, name) == 0)
            return d;
    return NULL;
}

static int fragment_index(const struct gql_document *doc, const struct gql_definition *f)
{
    int i = 0;
    for (const struct gql_definition *d = doc->definitions; d; d = d->next, i++)
        if (d == f)
            return i;
    return -1;
}

/* ---- document-level rules ---- */

static void check_definitions(struct vctx *v)
{
    const struct gql_document *doc = v->doc;
    size_t ops = 0;
    for (const struct gql_definition *d = doc->definitions; d; d = d->next)
        ops += d->kind == GQL_DEFINITION_OPERATION;
    for (const struct gql_definition *d = doc->definitions; d; d = d->next) {
        if (d->kind == GQL_DEFINITION_OPERATION) {
            if (!d->name && ops > 1)
                verr(v, d->loc, NOLOC,
                     "This anonymous operation must be the only defined operation.");
            if (d->operation == GQL_OPERATION_SUBSCRIPTION)
                verr(v, d->loc, NOLOC,
                     "Schema is not configured to execute subscription operation.");
            if (d->operation == GQL_OPERATION_MUTATION && !gql_mutation_type)
                verr(v, d->loc, NOLOC, "Schema is not configured to execute mutation operation.");
        }
        if (!d->name)
            continue;
        for (const struct gql_definition *e = doc->definitions; e != d; e = e->next)
            if (e->kind == d->kind && e->name && strcmp(e->name, d->name) == 0) {
                verr(v, e->loc, d->loc,
                     d->kind == GQL_DEFINITION_OPERATION
                         ? "There can be only one operation named \"%s\"."
                         : "There can be only one fragment named \"%s\".",
                     d->name);
                break;
            }
        if (d->kind == GQL_DEFINITION_FRAGMENT) {
            const struct gql_tdef *t = gql_type_find(d->type_condition);
            if (!t)
                verr(v, d->loc, NOLOC, "Unknown type \"%s\".", d->type_condition);
            else if (!gql_is_composite(t))
                verr(v, d->loc, NOLOC,
                     "Fragment \"%s\" cannot condition on non composite type \"%s\".", d->name,
                     d->type_condition);
        }
    }
}

/* ---- fragment spreads ---- */

struct spreads {
    const struct gql_selection **s;
    size_t n, cap;
};

static void spreads_add(struct spreads *sp, const struct gql_selection *s)
{
    if (sp->n == sp->cap) {
        size_t cap = sp->cap ? sp->cap * 2 : 16;
        const struct gql_selection **p = realloc(sp->s, cap * sizeof *p);
        if (!p)
            return; /* out of memory: fewer spreads are checked, none is invented */
        sp->s = p;
        sp->cap = cap;
    }
    sp->s[sp->n++] = s;
}

/* Every spread in a selection set, through inline fragments but not into named ones. */
static void spreads_collect(const struct gql_selection *s, struct spreads *sp)
{
    for (; s; s = s->next) {
        if (s->kind == GQL_SELECTION_FRAGMENT_SPREAD)
            spreads_add(sp, s);
        else
            spreads_collect(s->selection_set, sp);
    }
}

struct cycles {
    struct vctx *v;
    bool *visited;
    int *path_index; /* by definition index: position in path, or -1 */
    const struct gql_selection **path;
    size_t path_n;
    bool found;
};

/* Out of line: the message buffer stays off the recursion's stack frames. */
static __attribute__((noinline)) void cycle_report(struct cycles *c,
                                                   const struct gql_selection *spread, size_t from)
{
    char via[MSG_MAX] = "";
    size_t at = 0;
    for (size_t k = from; k + 1 < c->path_n && at < sizeof via; k++)
        at += (size_t)snprintf(via + at, sizeof via - at, "%s\"%s\"", at ? ", " : "",
                               c->path[k]->name);
    verr(c->v, spread->loc, NOLOC, "Cannot spread fragment \"%s\" within itself%s%s.", spread->name,
         via[0] ? " via " : "", via);
    c->found = true;
}

/* NoFragmentCycles, as graphql-js: each cycle reported once, from where it closes. */
static void cycle_detect(struct cycles *c, const struct gql_definition *f)
{
    int fi = fragment_index(c->v->doc, f);
    if (c->visited[fi])
        return;
    c->visited[fi] = true;
    struct spreads sp = {0};
    spreads_collect(f->selection_set, &sp);
    if (sp.n) {
        c->path_index[fi] = (int)c->path_n;
        for (size_t i = 0; i < sp.n; i++) {
            const struct gql_definition *g = fragment_find(c->v->doc, sp.s[i]->name);
            c->path[c->path_n++] = sp.s[i];
            int gi = g ? fragment_index(c->v->doc, g) : -1;
            if (g && c->path_index[gi] < 0) {
                cycle_detect(c, g);
            } else if (g) {
                cycle_report(c, sp.s[i], (size_t)c->path_index[gi]);
            }
            c->path_n--;
        }
        c->path_index[fi] = -1;
    }
    free(sp.s);
}

static bool check_cycles(struct vctx *v)
{
    size_t n = v->doc->definition_count;
    struct cycles c = {v,
                       calloc(n, sizeof(bool)),
                       malloc(n * sizeof(int)),
                       malloc((size_t)(v->doc->token_count + 1) * sizeof(void *)),
                       0,
                       false};
    if (!c.visited || !c.path_index || !c.path) {
        free(c.visited);
        free(c.path_index);
        free(c.path);
        verr(v, NOLOC, NOLOC, "Out of memory while validating.");
        return true;
    }
    for (size_t i = 0; i < n; i++)
        c.path_index[i] = -1;
    for (const struct gql_definition *d = v->doc->definitions; d; d = d->next)
        if (d->kind == GQL_DEFINITION_FRAGMENT)
            cycle_detect(&c, d);
    free(c.visited);
    free(c.path_index);
    free(c.path);
    return c.found;
}

/* ---- limits (fragments expanded, memoised per fragment; no cycles exist here) ---- */

struct cost {
    size_t fields, depth;
};

struct costs {
    const struct gql_document *doc;
    struct cost *memo; /* by definition index */
    bool *done;
};

static size_t sat_add(size_t a, size_t b)
{
    return a + b < a || a + b > (size_t)1 << 40 ? (size_t)1 << 40 : a + b;
}

static struct cost selection_cost(struct costs *c, const struct gql_selection *s)
{
    struct cost total = {0, 0};
    for (; s; s = s->next) {
        struct cost one = {0, 0};
        if (s->kind == GQL_SELECTION_FIELD) {
            one = selection_cost(c, s->selection_set);
            one.fields = sat_add(one.fields, 1);
            one.depth += 1;
        } else if (s->kind == GQL_SELECTION_INLINE_FRAGMENT) {
            one = selection_cost(c, s->selection_set);
        } else {
            const struct gql_definition *f = fragment_find(c->doc, s->name);
            if (f) {
                int i = fragment_index(c->doc, f);
                if (!c->done[i]) {
                    c->memo[i] = selection_cost(c, f->selection_set);
                    c->done[i] = true;
                }
                one = c->memo[i];
            }
        }
        total.fields = sat_add(total.fields, one.fields);
        if (one.depth > total.depth)
            total.depth = one.depth;
    }
    return total;
}

static bool check_limits(struct vctx *v)
{
    const struct gql_document *doc = v->doc;
    if (doc->alias_count > GQL_VALIDATE_ALIASES_MAX) {
        verr(v, NOLOC, NOLOC, "The document has %zu aliases; at most %d are allowed.",
             doc->alias_count, GQL_VALIDATE_ALIASES_MAX);
        return false;
    }
    size_t n = doc->definition_count;
    struct costs c = {doc, calloc(n, sizeof(struct cost)), calloc(n, sizeof(bool))};
    bool ok = c.memo && c.done;
    /* Operations, and fragments too: an unused fragment is still walked by the rules. */
    for (const struct gql_definition *d = doc->definitions; ok && d; d = d->next) {
        struct cost k = selection_cost(&c, d->selection_set);
        if (k.depth > GQL_VALIDATE_DEPTH_MAX) {
            verr(v, d->loc, NOLOC,
                 "The %s is %zu levels deep (fragments expanded); at most %d are allowed.",
                 d->kind == GQL_DEFINITION_OPERATION ? "operation" : "fragment", k.depth,
                 GQL_VALIDATE_DEPTH_MAX);
            ok = false;
        } else if (k.fields > GQL_VALIDATE_FIELDS_MAX) {
            verr(v, d->loc, NOLOC,
                 "The %s selects %zu fields (fragments expanded); at most %d are allowed.",
                 d->kind == GQL_DEFINITION_OPERATION ? "operation" : "fragment", k.fields,
                 GQL_VALIDATE_FIELDS_MAX);
            ok = false;
        }
    }
    if (!c.memo || !c.done)
        verr(v, NOLOC, NOLOC, "Out of memory while validating.");
    free(c.memo);
    free(c.done);
    return ok;
}

/* ---- arguments and directives ---- */

static void check_value(struct vctx *v, const struct gql_tref *t, const struct gql_value *val)
{
    char err[MSG_MAX];
    json_t *x = gql_coerce_literal(t, val, NULL, err, sizeof err);
    if (!x)
        verr(v, val->loc, NOLOC, "%s", err);
    json_decref(x);
}

/* owner: "field \"Query.me\"" style for messages; is_dir picks the directive wording. */
static void check_args(struct vctx *v, const struct gql_argument *args,
                       const struct gql_ivalue *defs, int n, bool is_dir, const char *type_name,
                       const char *name, struct gql_location at)
{
    char tn[128];
    for (const struct gql_argument *a = args; a; a = a->next) {
        const struct gql_ivalue *d = gql_ivalue_find(defs, n, a->name);
        bool dup = false;
        for (const struct gql_argument *b = args; b != a; b = b->next)
            if (strcmp(a->name, b->name) == 0)
                dup = true;
        if (dup) {
            const struct gql_argument *first = args;
            while (strcmp(first->name, a->name) != 0)
                first = first->next;
            verr(v, first->loc, a->loc, "There can be only one argument named \"%s\".", a->name);
            continue;
        }
        if (!d) {
            if (is_dir)
                verr(v, a->loc, NOLOC, "Unknown argument \"%s\" on directive \"@%s\".", a->name,
                     name);
            else
                verr(v, a->loc, NOLOC, "Unknown argument \"%s\" on field \"%s.%s\".", a->name,
                     type_name, name);
            continue;
        }
        check_value(v, d->type, a->value);
    }
    for (int i = 0; i < n; i++) {
        if (defs[i].type->kind != GQL_TYPE_NON_NULL || defs[i].default_json)
            continue;
        const struct gql_argument *a = args;
        while (a && strcmp(a->name, defs[i].name) != 0)
            a = a->next;
        if (!a)
            verr(v, at, NOLOC,
                 "%s \"%s%s\" argument \"%s\" of type \"%s\" is required, but it was not "
                 "provided.",
                 is_dir ? "Directive" : "Field", is_dir ? "@" : "", name, defs[i].name,
                 gql_tref_print(defs[i].type, tn, sizeof tn));
    }
}

static void check_directives(struct vctx *v, const struct gql_directive *dirs, const char *location)
{
    for (const struct gql_directive *d = dirs; d; d = d->next) {
        const struct gql_ddef *dd = gql_directive_find(d->name);
        if (!dd) {
            verr(v, d->loc, NOLOC, "Unknown directive \"@%s\".", d->name);
            continue;
        }
        bool allowed = false;
        for (int i = 0; i < dd->n_locations; i++)
            allowed |= strcmp(dd->locations[i], location) == 0;
        if (!allowed)
            verr(v, d->loc, NOLOC, "Directive \"@%s\" may not be used on %s.", d->name, location);
        if (!dd->repeatable)
            for (const struct gql_directive *e = dirs; e != d; e = e->next)
                if (strcmp(e->name, d->name) == 0) {
                    verr(v, e->loc, d->loc,
                         "The directive \"@%s\" can only be used once at this location.", d->name);
                    break;
                }
        check_args(v, d->arguments, dd->args, dd->n_args, true, NULL, d->name, d->loc);
    }
}

/* ---- OverlappingFieldsCanBeMerged (same parent type: every type here is an object) ---- */

struct fieldset {
    const struct gql_selection **f;
    size_t n, cap;
};

static void fields_add(struct fieldset *fs, const struct gql_selection *s)
{
    if (fs->n == fs->cap) {
        size_t cap = fs->cap ? fs->cap * 2 : 16;
        const struct gql_selection **p = realloc(fs->f, cap * sizeof *p);
        if (!p)
            return;
        fs->f = p;
        fs->cap = cap;
    }
    fs->f[fs->n++] = s;
}

/* Fields of a selection set with fragments flattened; visited guards against cycles. */
static void fields_collect(const struct gql_document *doc, const struct gql_selection *s,
                           struct fieldset *fs, bool *visited, int depth)
{
    if (depth > GQL_DEPTH_MAX)
        return;
    for (; s; s = s->next) {
        if (s->kind == GQL_SELECTION_FIELD) {
            fields_add(fs, s);
        } else if (s->kind == GQL_SELECTION_INLINE_FRAGMENT) {
            fields_collect(doc, s->selection_set, fs, visited, depth + 1);
        } else {
            const struct gql_definition *f = fragment_find(doc, s->name);
            int i = f ? fragment_index(doc, f) : -1;
            if (f && !visited[i]) {
                visited[i] = true;
                fields_collect(doc, f->selection_set, fs, visited, depth + 1);
            }
        }
    }
}

static const char *key_of(const struct gql_selection *s)
{
    return s->alias ? s->alias : s->name;
}

static bool args_equal(const struct gql_argument *a, const struct gql_argument *b)
{
    size_t na = 0, nb = 0;
    for (const struct gql_argument *x = a; x; x = x->next)
        na++;
    for (const struct gql_argument *x = b; x; x = x->next)
        nb++;
    if (na != nb)
        return false;
    for (; a; a = a->next) {
        const struct gql_argument *m = b;
        while (m && strcmp(m->name, a->name) != 0)
            m = m->next;
        if (!m)
            return false;
        char pa[GQL_VALUE_TEXT_MAX], pb[GQL_VALUE_TEXT_MAX];
        if (strcmp(gql_value_print(a->value, pa, sizeof pa),
                   gql_value_print(m->value, pb, sizeof pb)) != 0)
            return false;
    }
    return true;
}

/* The reason two same-keyed fields cannot merge, into why[cap]; false when they can. */
static bool conflict(struct vctx *v, const struct gql_selection *a, const struct gql_selection *b,
                     char *why, size_t cap, int depth);

static bool set_conflict(struct vctx *v, struct fieldset *fs, char *why, size_t cap,
                         const struct gql_selection **ca, const struct gql_selection **cb,
                         int depth)
{
    for (size_t i = 0; i < fs->n; i++)
        for (size_t j = i + 1; j < fs->n && v->budget > 0; j++)
            if (fs->f[i] != fs->f[j] && v->budget-- > 0 &&
                strcmp(key_of(fs->f[i]), key_of(fs->f[j])) == 0 &&
                conflict(v, fs->f[i], fs->f[j], why, cap, depth)) {
                *ca = fs->f[i];
                *cb = fs->f[j];
                return true;
            }
    return false;
}

static bool conflict(struct vctx *v, const struct gql_selection *a, const struct gql_selection *b,
                     char *why, size_t cap, int depth)
{
    const struct gql_document *doc = v->doc;
    if (strcmp(a->name, b->name) != 0) {
        snprintf(why, cap, "\"%s\" and \"%s\" are different fields", a->name, b->name);
        return true;
    }
    if (!args_equal(a->arguments, b->arguments)) {
        snprintf(why, cap, "they have differing arguments");
        return true;
    }
    if (!a->selection_set || !b->selection_set || depth > GQL_DEPTH_MAX || v->budget <= 0)
        return false;
    struct fieldset fs = {0};
    bool *visited = calloc(doc->definition_count, sizeof(bool));
    if (!visited)
        return false;
    fields_collect(doc, a->selection_set, &fs, visited, 0);
    memset(visited, 0, doc->definition_count * sizeof(bool));
    fields_collect(doc, b->selection_set, &fs, visited, 0);
    free(visited);
    v->budget -= (long)fs.n; /* collecting costs too */
    char inner[MSG_MAX];
    const struct gql_selection *x, *y;
    bool c = set_conflict(v, &fs, inner, sizeof inner, &x, &y, depth + 1);
    free(fs.f);
    if (c)
        snprintf(why, cap, "subfields \"%s\" conflict because %.400s", key_of(x), inner);
    return c;
}

static void check_overlaps(struct vctx *v, const struct gql_selection *set)
{
    if (v->cycles || v->budget <= 0)
        return; /* merging through a cycle never ends; past the budget, stop looking */
    struct fieldset fs = {0};
    bool *visited = calloc(v->doc->definition_count, sizeof(bool));
    if (!visited)
        return;
    fields_collect(v->doc, set, &fs, visited, 0);
    free(visited);
    /* report each response key once */
    for (size_t i = 0; i < fs.n; i++) {
        bool seen = false;
        for (size_t k = 0; k < i; k++)
            seen |= strcmp(key_of(fs.f[k]), key_of(fs.f[i])) == 0;
        if (seen)
            continue;
        for (size_t j = i + 1; j < fs.n && v->budget > 0; j++) {
            char why[MSG_MAX];
            if (fs.f[i] != fs.f[j] && v->budget-- > 0 &&
                strcmp(key_of(fs.f[i]), key_of(fs.f[j])) == 0 &&
                conflict(v, fs.f[i], fs.f[j], why, sizeof why, 0)) {
                verr(v, fs.f[i]->loc, fs.f[j]->loc,
                     "Fields \"%s\" conflict because %s. Use different aliases on the fields to "
                     "fetch both if this was intended.",
                     key_of(fs.f[i]), why);
                break;
            }
        }
    }
    free(fs.f);
}

/* ---- the selection walk ---- */

static void check_selections(struct vctx *v, const struct gql_tdef *parent,
                             const struct gql_selection *set)
{
    char tn[128];
    if (v->full)
        return;
    check_overlaps(v, set);
    for (const struct gql_selection *s = set; s; s = s->next) {
        switch (s->kind) {
        case GQL_SELECTION_FIELD: {
            check_directives(v, s->directives, "FIELD");
            const struct gql_fdef *f = gql_field_lookup(parent, s->name);
            if (!f) {
                verr(v, s->loc, NOLOC, "Cannot query field \"%s\" on type \"%s\".", s->name,
                     parent->name);
                continue;
            }
            check_args(v, s->arguments, f->args, f->n_args, false, parent->name, s->name, s->loc);
            const struct gql_tdef *t = gql_tref_named(f->type);
            if (gql_is_leaf(t) && s->selection_set)
                verr(v, s->selection_set->loc, NOLOC,
                     "Field \"%s\" must not have a selection since type \"%s\" has no subfields.",
                     s->name, gql_tref_print(f->type, tn, sizeof tn));
            else if (!gql_is_leaf(t) && !s->selection_set)
                verr(v, s->loc, NOLOC,
                     "Field \"%s\" of type \"%s\" must have a selection of subfields. Did you "
                     "mean \"%s { ... }\"?",
                     s->name, gql_tref_print(f->type, tn, sizeof tn), s->name);
            else if (s->selection_set)
                check_selections(v, t, s->selection_set);
            break;
        }
        case GQL_SELECTION_FRAGMENT_SPREAD: {
            check_directives(v, s->directives, "FRAGMENT_SPREAD");
            const struct gql_definition *f = fragment_find(v->doc, s->name);
            if (!f) {
                verr(v, s->loc, NOLOC, "Unknown fragment \"%s\".", s->name);
                break;
            }
            const struct gql_tdef *t = gql_type_find(f->type_condition);
            if (t && gql_is_composite(t) && t != parent)
                verr(v, s->loc, NOLOC,
                     "Fragment \"%s\" cannot be spread here as objects of type \"%s\" can never "
                     "be of type \"%s\".",
                     s->name, parent->name, t->name);
            break;
        }
        case GQL_SELECTION_INLINE_FRAGMENT: {
            check_directives(v, s->directives, "INLINE_FRAGMENT");
            const struct gql_tdef *t = parent;
            if (s->type_condition) {
                t = gql_type_find(s->type_condition);
                if (!t) {
                    verr(v, s->loc, NOLOC, "Unknown type \"%s\".", s->type_condition);
                    break;
                }
                if (!gql_is_composite(t)) {
                    verr(v, s->loc, NOLOC,
                         "Fragment cannot condition on non composite type \"%s\".", t->name);
                    break;
                }
                if (t != parent) {
                    verr(v, s->loc, NOLOC,
                         "Fragment cannot be spread here as objects of type \"%s\" can never be "
                         "of type \"%s\".",
                         parent->name, t->name);
                    break;
                }
            }
            check_selections(v, t, s->selection_set);
            break;
        }
        }
    }
}

/* ---- variables ---- */

struct usage {
    const char *name;
    struct gql_location loc;
    const struct gql_tref *expected;
    bool location_default;
};

struct usages {
    struct usage *u;
    size_t n, cap;
};

static void usage_add(struct usages *us, const struct gql_value *val, const struct gql_tref *t,
                      bool has_default)
{
    if (us->n == us->cap) {
        size_t cap = us->cap ? us->cap * 2 : 16;
        struct usage *p = realloc(us->u, cap * sizeof *p);
        if (!p)
            return;
        us->u = p;
        us->cap = cap;
    }
    us->u[us->n++] = (struct usage){val->text, val->loc, t, has_default};
}

static void value_usages(struct usages *us, const struct gql_value *val, const struct gql_tref *t,
                         bool has_default)
{
    if (val->kind == GQL_VALUE_VARIABLE) {
        usage_add(us, val, t, has_default);
        return;
    }
    const struct gql_tref *inner = t && t->kind == GQL_TYPE_NON_NULL ? t->of : t;
    if (val->kind == GQL_VALUE_LIST) {
        for (const struct gql_value *i = val->items; i; i = i->next)
            value_usages(us, i, inner && inner->kind == GQL_TYPE_LIST ? inner->of : NULL, false);
    } else if (val->kind == GQL_VALUE_OBJECT) {
        const struct gql_tdef *d =
            inner && inner->kind == GQL_TYPE_NAMED && inner->named->kind == GQL_KIND_INPUT_OBJECT
                ? inner->named
                : NULL;
        for (const struct gql_object_field *f = val->fields; f; f = f->next) {
            const struct gql_ivalue *iv =
                d ? gql_ivalue_find(d->input_fields, d->n_input_fields, f->name) : NULL;
            value_usages(us, f->value, iv ? iv->type : NULL, iv && iv->default_json);
        }
    }
}

static void args_usages(struct usages *us, const struct gql_argument *args,
                        const struct gql_ivalue *defs, int n)
{
    for (const struct gql_argument *a = args; a; a = a->next) {
        const struct gql_ivalue *d = defs ? gql_ivalue_find(defs, n, a->name) : NULL;
        value_usages(us, a->value, d ? d->type : NULL, d && d->default_json);
    }
}

static void dirs_usages(struct usages *us, const struct gql_directive *dirs)
{
    for (const struct gql_directive *d = dirs; d; d = d->next) {
        const struct gql_ddef *dd = gql_directive_find(d->name);
        args_usages(us, d->arguments, dd ? dd->args : NULL, dd ? dd->n_args : 0);
    }
}

static void sel_usages(const struct gql_document *doc, struct usages *us,
                       const struct gql_tdef *parent, const struct gql_selection *s, bool *visited)
{
    for (; s; s = s->next) {
        dirs_usages(us, s->directives);
        if (s->kind == GQL_SELECTION_FIELD) {
            const struct gql_fdef *f = parent ? gql_field_lookup(parent, s->name) : NULL;
            args_usages(us, s->arguments, f ? f->args : NULL, f ? f->n_args : 0);
            sel_usages(doc, us, f ? gql_tref_named(f->type) : NULL, s->selection_set, visited);
        } else if (s->kind == GQL_SELECTION_INLINE_FRAGMENT) {
            const struct gql_tdef *t =
                s->type_condition ? gql_type_find(s->type_condition) : parent;
            sel_usages(doc, us, t, s->selection_set, visited);
        } else {
            const struct gql_definition *f = fragment_find(doc, s->name);
            int i = f ? fragment_index(doc, f) : -1;
            if (f && !visited[i]) {
                visited[i] = true;
                dirs_usages(us, f->directives);
                sel_usages(doc, us, gql_type_find(f->type_condition), f->selection_set, visited);
            }
        }
    }
}

/* Is a variable of type vt allowed where t is expected (spec 5.8.5 AreTypesCompatible)? */
static bool compatible(const struct gql_type *vt, const struct gql_tref *t)
{
    if (t->kind == GQL_TYPE_NON_NULL)
        return vt->kind == GQL_TYPE_NON_NULL && compatible(vt->of_type, t->of);
    if (vt->kind == GQL_TYPE_NON_NULL)
        return compatible(vt->of_type, t);
    if (t->kind == GQL_TYPE_LIST)
        return vt->kind == GQL_TYPE_LIST && compatible(vt->of_type, t->of);
    if (vt->kind == GQL_TYPE_LIST)
        return false;
    return strcmp(vt->name, t->named->name) == 0;
}

static const struct gql_tdef *ast_named(const struct gql_type *t)
{
    while (t->kind != GQL_TYPE_NAMED)
        t = t->of_type;
    return gql_type_find(t->name);
}

static const char *ast_name(const struct gql_type *t)
{
    while (t->kind != GQL_TYPE_NAMED)
        t = t->of_type;
    return t->name;
}

/* A schema type reference for an AST type, into buf (depth-bounded); NULL if unknown. */
static const struct gql_tref *ast_tref(const struct gql_type *t, struct gql_tref *buf, int n)
{
    if (n <= 0)
        return NULL;
    if (t->kind == GQL_TYPE_NAMED) {
        const struct gql_tdef *d = gql_type_find(t->name);
        if (!d)
            return NULL;
        *buf = (struct gql_tref){GQL_TYPE_NAMED, NULL, d};
        return buf;
    }
    const struct gql_tref *of = ast_tref(t->of_type, buf + 1, n - 1);
    if (!of)
        return NULL;
    *buf = (struct gql_tref){t->kind, of, NULL};
    return buf;
}

static void check_variables(struct vctx *v, const struct gql_definition *op)
{
    char tn[128], en[128];
    const struct gql_tdef *root =
        op->operation == GQL_OPERATION_MUTATION ? gql_mutation_type : gql_query_type;
    for (const struct gql_variable_definition *d = op->variables; d; d = d->next) {
        for (const struct gql_variable_definition *e = op->variables; e != d; e = e->next)
            if (strcmp(e->name, d->name) == 0) {
                verr(v, e->loc, d->loc, "There can be only one variable named \"$%s\".", d->name);
                break;
            }
        check_directives(v, d->directives, "VARIABLE_DEFINITION");
        const struct gql_tdef *t = ast_named(d->type);
        if (!t) {
            verr(v, d->type->loc, NOLOC, "Unknown type \"%s\".", ast_name(d->type));
            continue;
        }
        if (!gql_is_input(t)) {
            verr(v, d->type->loc, NOLOC, "Variable \"$%s\" cannot be non-input type \"%s\".",
                 d->name, gql_ast_type_print(d->type, tn, sizeof tn));
            continue;
        }
        struct gql_tref buf[GQL_DEPTH_MAX + 2];
        const struct gql_tref *tr = ast_tref(d->type, buf, GQL_DEPTH_MAX + 2);
        if (d->default_value && tr)
            check_value(v, tr, d->default_value);
    }
    if (!root)
        return;
    struct usages us = {0};
    bool *visited = calloc(v->doc->definition_count, sizeof(bool));
    if (!visited)
        return;
    dirs_usages(&us, op->directives);
    sel_usages(v->doc, &us, root, op->selection_set, visited);
    free(visited);
    for (size_t i = 0; i < us.n; i++) {
        const struct usage *u = &us.u[i];
        const struct gql_variable_definition *d = op->variables;
        while (d && strcmp(d->name, u->name) != 0)
            d = d->next;
        if (!d) {
            if (op->name)
                verr(v, u->loc, op->loc, "Variable \"$%s\" is not defined by operation \"%s\".",
                     u->name, op->name);
            else
                verr(v, u->loc, op->loc, "Variable \"$%s\" is not defined.", u->name);
            continue;
        }
        if (!u->expected || !ast_named(d->type))
            continue;
        const struct gql_tref *want = u->expected;
        bool var_default = d->default_value && d->default_value->kind != GQL_VALUE_NULL;
        if (want->kind == GQL_TYPE_NON_NULL && d->type->kind != GQL_TYPE_NON_NULL &&
            (var_default || u->location_default))
            want = want->of;
        if (!compatible(d->type, want))
            verr(v, d->loc, u->loc,
                 "Variable \"$%s\" of type \"%s\" used in position expecting type \"%s\".", u->name,
                 gql_ast_type_print(d->type, tn, sizeof tn),
                 gql_tref_print(u->expected, en, sizeof en));
    }
    for (const struct gql_variable_definition *d = op->variables; d; d = d->next) {
        bool used = false;
        for (size_t i = 0; i < us.n && !used; i++)
            used = strcmp(us.u[i].name, d->name) == 0;
        if (!used) {
            if (op->name)
                verr(v, d->loc, NOLOC, "Variable \"$%s\" is never used in operation \"%s\".",
                     d->name, op->name);
            else
                verr(v, d->loc, NOLOC, "Variable \"$%s\" is never used.", d->name);
        }
    }
    free(us.u);
}

/* ---- NoUnusedFragments ---- */

static void mark_used(const struct gql_document *doc, const struct gql_selection *s, bool *used)
{
    struct spreads sp = {0};
    spreads_collect(s, &sp);
    for (size_t i = 0; i < sp.n; i++) {
        const struct gql_definition *f = fragment_find(doc, sp.s[i]->name);
        int fi = f ? fragment_index(doc, f) : -1;
        if (f && !used[fi]) {
            used[fi] = true;
            mark_used(doc, f->selection_set, used);
        }
    }
    free(sp.s);
}

static void check_unused_fragments(struct vctx *v)
{
    bool *used = calloc(v->doc->definition_count, sizeof(bool));
    if (!used)
        return;
    for (const struct gql_definition *d = v->doc->definitions; d; d = d->next)
        if (d->kind == GQL_DEFINITION_OPERATION)
            mark_used(v->doc, d->selection_set, used);
    int i = 0;
    for (const struct gql_definition *d = v->doc->definitions; d; d = d->next, i++)
        if (d->kind == GQL_DEFINITION_FRAGMENT && !used[i])
            verr(v, d->loc, NOLOC, "Fragment \"%s\" is never used.", d->name);
    free(used);
}

int gql_validate(const struct gql_document *doc, json_t *errors)
{
    struct vctx v = {doc, errors, 0, false, false, GQL_VALIDATE_COMPARISONS_MAX};
    check_definitions(&v);
    v.cycles = check_cycles(&v);
    if (!v.cycles && !check_limits(&v))
        return v.n; /* too costly to look further */
    for (const struct gql_definition *d = doc->definitions; d && !v.full; d = d->next) {
        if (d->kind == GQL_DEFINITION_OPERATION) {
            const struct gql_tdef *root = d->operation == GQL_OPERATION_QUERY ? gql_query_type
                                          : d->operation == GQL_OPERATION_MUTATION
                                              ? gql_mutation_type
                                              : NULL;
            check_directives(&v, d->directives,
                             d->operation == GQL_OPERATION_QUERY      ? "QUERY"
                             : d->operation == GQL_OPERATION_MUTATION ? "MUTATION"
                                                                      : "SUBSCRIPTION");
            if (root) {
                check_selections(&v, root, d->selection_set);
                check_variables(&v, d);
            }
        } else {
            check_directives(&v, d->directives, "FRAGMENT_DEFINITION");
            const struct gql_tdef *t = gql_type_find(d->type_condition);
            if (t && gql_is_composite(t))
                check_selections(&v, t, d->selection_set);
        }
    }
    check_unused_fragments(&v);
    return v.n;
}
