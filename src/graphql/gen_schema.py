#!/usr/bin/python3
"""Generate src/graphql/schema_data.c from schema.graphql and builtins.graphql.

The SDL files are the contract; the C tables are derived from them so the two cannot drift.
`make` does not run this: the generated file is committed, and tests/unit/test_graphql_schema.c
fails when it is stale (it compares a hash of the SDL files with the one recorded here).
Run: python3 src/graphql/gen_schema.py  (from the repository root)."""
import hashlib
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
FILES = ["schema.graphql", "builtins.graphql"]
META = '''type __Meta {
  """The name of the current Object type at runtime."""
  __typename: String!
  """Access the current type schema of this server."""
  __schema: __Schema!
  """Request the type information of a single type."""
  __type(name: String!): __Type
}'''

TOKEN = re.compile(r'''
  (?P<ws>[\s,\ufeff]+|\#[^\n\r]*)
 |(?P<block>"""(?:\\"""|[^"]|"(?!""))*""")
 |(?P<string>"(?:\\.|[^"\\\n])*")
 |(?P<float>-?\d+(?:\.\d+(?:[eE][+-]?\d+)?|[eE][+-]?\d+))
 |(?P<int>-?\d+)
 |(?P<name>[_A-Za-z][_0-9A-Za-z]*)
 |(?P<punct>\.\.\.|[!$&()\[\]{}:=@|])
''', re.X)


def block_value(raw):
    raw = raw.replace('\\"""', '"""')
    lines = re.split(r'\r\n|\n|\r', raw)
    common = None
    for ln in lines[1:]:
        ind = len(ln) - len(ln.lstrip(' \t'))
        if ind < len(ln) and (common is None or ind < common):
            common = ind
    if common:
        lines = [lines[0]] + [ln[common:] for ln in lines[1:]]
    while lines and not lines[0].strip(' \t'):
        lines.pop(0)
    while lines and not lines[-1].strip(' \t'):
        lines.pop()
    return "\n".join(lines)


def lex(text):
    out, i = [], 0
    while i < len(text):
        m = TOKEN.match(text, i)
        if not m:
            sys.exit("gen_schema: cannot lex at %r" % text[i:i + 30])
        i = m.end()
        kind = m.lastgroup
        if kind == "ws":
            continue
        v = m.group(kind)
        if kind == "block":
            out.append(("string", block_value(v[3:-3])))
        elif kind == "string":
            out.append(("string", json.loads(v)))
        else:
            out.append((kind, v))
    out.append(("eof", None))
    return out


class P:
    def __init__(self, toks):
        self.t, self.i = toks, 0

    def peek(self, v=None):
        k, val = self.t[self.i]
        return val == v if v is not None else (k, val)

    def take(self, v=None):
        k, val = self.t[self.i]
        if v is not None and val != v:
            sys.exit("gen_schema: expected %s, found %r" % (v, val))
        self.i += 1
        return val

    def desc(self):
        if self.t[self.i][0] == "string":
            return self.take()
        return None

    def typeref(self):
        if self.peek("["):
            self.take("[")
            inner = self.typeref()
            self.take("]")
            t = ("LIST", inner)
        else:
            t = ("NAMED", self.take())
        if self.peek("!"):
            self.take("!")
            t = ("NON_NULL", t)
        return t

    def value(self):
        k, v = self.peek()
        if v == "[":
            self.take()
            items = []
            while not self.peek("]"):
                items.append(self.value())
            self.take("]")
            return ("list", items)
        if v == "{":
            self.take()
            fields = []
            while not self.peek("}"):
                n = self.take()
                self.take(":")
                fields.append((n, self.value()))
            self.take("}")
            return ("object", fields)
        self.take()
        if k == "string":
            return ("string", v)
        if k == "int":
            return ("int", v)
        if k == "float":
            return ("float", v)
        if v in ("true", "false"):
            return ("bool", v)
        if v == "null":
            return ("null", v)
        return ("enum", v)

    def directives(self):
        ds = []
        while self.peek("@"):
            self.take("@")
            name = self.take()
            args = {}
            if self.peek("("):
                self.take("(")
                while not self.peek(")"):
                    n = self.take()
                    self.take(":")
                    args[n] = self.value()
                self.take(")")
            ds.append((name, args))
        return ds

    def input_values(self, close):
        vals = []
        while not self.peek(close):
            d = self.desc()
            name = self.take()
            self.take(":")
            t = self.typeref()
            default = None
            if self.peek("="):
                self.take("=")
                default = self.value()
            dirs = self.directives()
            vals.append(dict(name=name, desc=d, type=t, default=default,
                             deprecated=deprecation(dirs)))
        self.take(close)
        return vals


def deprecation(dirs):
    for n, a in dirs:
        if n == "deprecated":
            return a["reason"][1] if "reason" in a else "No longer supported"
    return None


def print_value(v):
    k, x = v
    if k == "string":
        return json.dumps(x, ensure_ascii=False)
    if k in ("int", "float", "bool", "null", "enum"):
        return x
    if k == "list":
        return "[" + ", ".join(print_value(i) for i in x) + "]"
    return "{" + ", ".join("%s: %s" % (n, print_value(i)) for n, i in x) + "}"


def json_value(v):
    k, x = v
    if k in ("string", "enum"):
        return x
    if k == "int":
        return int(x)
    if k == "float":
        return float(x)
    if k == "bool":
        return x == "true"
    if k == "null":
        return None
    if k == "list":
        return [json_value(i) for i in x]
    return {n: json_value(i) for n, i in x}


def parse(text, types, directives, roots):
    p = P(lex(text))
    while not p.peek() == ("eof", None):
        d = p.desc()
        kw = p.take()
        if kw == "schema":
            roots["description"] = d
            p.directives()
            p.take("{")
            while not p.peek("}"):
                op = p.take()
                p.take(":")
                roots[op] = p.take()
            p.take("}")
        elif kw == "scalar":
            name = p.take()
            dirs = p.directives()
            spec = next((a["url"][1] for n, a in dirs if n == "specifiedBy"), None)
            types.append(dict(kind="SCALAR", name=name, desc=d, specified_by=spec))
        elif kw in ("type", "input"):
            name = p.take()
            p.directives()
            p.take("{")
            if kw == "input":
                types.append(dict(kind="INPUT_OBJECT", name=name, desc=d,
                                  input_fields=p.input_values("}")))
                continue
            fields = []
            while not p.peek("}"):
                fd = p.desc()
                fname = p.take()
                args = []
                if p.peek("("):
                    p.take("(")
                    args = p.input_values(")")
                p.take(":")
                t = p.typeref()
                dirs = p.directives()
                fields.append(dict(name=fname, desc=fd, type=t, args=args,
                                   deprecated=deprecation(dirs)))
            p.take("}")
            types.append(dict(kind="OBJECT", name=name, desc=d, fields=fields))
        elif kw == "enum":
            name = p.take()
            p.directives()
            p.take("{")
            values = []
            while not p.peek("}"):
                vd = p.desc()
                vn = p.take()
                values.append(dict(name=vn, desc=vd, deprecated=deprecation(p.directives())))
            p.take("}")
            types.append(dict(kind="ENUM", name=name, desc=d, values=values))
        elif kw == "directive":
            p.take("@")
            name = p.take()
            args = []
            if p.peek("("):
                p.take("(")
                args = p.input_values(")")
            repeatable = False
            if p.peek("repeatable"):
                p.take()
                repeatable = True
            p.take("on")
            if p.peek("|"):
                p.take()
            locs = [p.take()]
            while p.peek("|"):
                p.take()
                locs.append(p.take())
            directives.append(dict(name=name, desc=d, args=args, locations=locs,
                                   repeatable=repeatable))
        else:
            sys.exit("gen_schema: unsupported definition %r" % kw)


def c_str(s):
    if s is None:
        return "NULL"
    b = s.encode("utf-8")
    out = '"'
    for ch in b:
        c = chr(ch)
        if c == '"' or c == '\\':
            out += '\\' + c
        elif c == '\n':
            out += '\\n'
        elif 0x20 <= ch < 0x7f and c != '?':
            out += c
        else:
            out += '\\%03o' % ch
    return out + '"'


def main():
    types, directives, roots = [], [], {}
    digest = hashlib.sha256()
    for f in FILES:
        text = open(os.path.join(HERE, f), encoding="utf-8").read()
        digest.update(text.encode("utf-8"))
        parse(text, types, directives, roots)
    # The meta fields (spec 4.1, 4.2): on every object type, not part of any type.
    parse(META, types, directives, roots)
    meta = types.pop()
    index = {t["name"]: i for i, t in enumerate(types)}
    if len(index) != len(types):
        sys.exit("gen_schema: a type is defined twice")

    def tref(t):
        if t[0] == "NAMED":
            if t[1] not in index:
                sys.exit("gen_schema: unknown type %s" % t[1])
            return "&(const struct gql_tref){GQL_TYPE_NAMED, NULL, &gql_types[%d]}" % index[t[1]]
        kind = "GQL_TYPE_LIST" if t[0] == "LIST" else "GQL_TYPE_NON_NULL"
        return "&(const struct gql_tref){%s, %s, NULL}" % (kind, tref(t[1]))

    out = []
    w = out.append
    w("/* GENERATED by src/graphql/gen_schema.py from schema.graphql and builtins.graphql:")
    w(" * do not edit; change the SDL and run `python3 src/graphql/gen_schema.py`. */")
    w('#include "graphql/schema.h"')
    w("")
    w("extern const struct gql_fdef gql_meta_fields[];")
    w("")
    w('const char gql_schema_sdl_sha256[] = "%s";' % digest.hexdigest())
    w("")

    def ivalues(prefix, vals):
        if not vals:
            return "NULL"
        w("static const struct gql_ivalue %s[] = {" % prefix)
        for v in vals:
            dflt = v["default"]
            w("    {%s, %s, %s, %s, %s, %s}," % (
                c_str(v["name"]), c_str(v["desc"]), tref(v["type"]),
                c_str(print_value(dflt)) if dflt else "NULL",
                c_str(json.dumps(json_value(dflt), ensure_ascii=False)) if dflt else "NULL",
                c_str(v["deprecated"])))
        w("};")
        return prefix

    w("extern const struct gql_tdef gql_types[];")
    rows = []
    for i, t in enumerate(types):
        fields = ivs = vals = "NULL"
        nf = niv = nv = 0
        if t["kind"] == "OBJECT":
            fl = []
            for j, f in enumerate(t["fields"]):
                fl.append((f, ivalues("args_%d_%d" % (i, j), f["args"])))
            w("static const struct gql_fdef fields_%d[] = {" % i)
            for f, a in fl:
                w("    {%s, %s, %s, %s, %d, %s}," % (c_str(f["name"]), c_str(f["desc"]),
                                                    tref(f["type"]), a, len(f["args"]),
                                                    c_str(f["deprecated"])))
            w("};")
            fields, nf = "fields_%d" % i, len(t["fields"])
        elif t["kind"] == "INPUT_OBJECT":
            ivs, niv = ivalues("inputs_%d" % i, t["input_fields"]), len(t["input_fields"])
        elif t["kind"] == "ENUM":
            w("static const struct gql_evdef values_%d[] = {" % i)
            for v in t["values"]:
                w("    {%s, %s, %s}," % (c_str(v["name"]), c_str(v["desc"]), c_str(v["deprecated"])))
            w("};")
            vals, nv = "values_%d" % i, len(t["values"])
        rows.append("    {GQL_KIND_%s, %s, %s, %s, %s, %d, %s, %d, %s, %d}," % (
            t["kind"], c_str(t["name"]), c_str(t["desc"]), c_str(t.get("specified_by")),
            fields, nf, ivs, niv, vals, nv))
    w("")
    w("const struct gql_tdef gql_types[] = {")
    out.extend(rows)
    w("};")
    w("const int gql_types_n = %d;" % len(types))
    w("")
    drows = []
    for i, d in enumerate(directives):
        a = ivalues("dargs_%d" % i, d["args"])
        w("static const char *const dlocs_%d[] = {%s};" % (i, ", ".join(c_str(l) for l in d["locations"])))
        drows.append("    {%s, %s, dlocs_%d, %d, %s, %d, %s}," % (
            c_str(d["name"]), c_str(d["desc"]), i, len(d["locations"]), a, len(d["args"]),
            "true" if d["repeatable"] else "false"))
    w("const struct gql_ddef gql_directives[] = {")
    out.extend(drows)
    w("};")
    w("const int gql_directives_n = %d;" % len(directives))
    w("")
    ml = [(f, ivalues("meta_args_%d" % j, f["args"])) for j, f in enumerate(meta["fields"])]
    w("const struct gql_fdef gql_meta_fields[] = {")
    for f, a in ml:
        w("    {%s, %s, %s, %s, %d, NULL}," % (c_str(f["name"]), c_str(f["desc"]), tref(f["type"]), a, len(f["args"])))
    w("};")
    w("const struct gql_tdef *const gql_query_type = &gql_types[%d];" % index[roots.get("query", "Query")])
    if "mutation" in roots:
        w("const struct gql_tdef *const gql_mutation_type = &gql_types[%d];" % index[roots["mutation"]])
    else:
        w("const struct gql_tdef *const gql_mutation_type = NULL;")
    w("const char *const gql_schema_description = %s;" % c_str(roots.get("description")))
    open(os.path.join(HERE, "schema_data.c"), "w", encoding="utf-8").write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
