#!/usr/bin/env python3
"""The option table (capi/src/option_table.inc) for the tools and tests that are not C++.

    scripts/option_table.py docs --write     rewrite moert.h's option key block from the table
    scripts/option_table.py docs --check     fail when that block is stale (ctest: options.docs)
    scripts/option_table.py check rust|go|java|cli|serve
                                             fail when that code's option keys differ from the table's
    scripts/option_table.py list [SCOPE]     print the keys (of one scope: load, generate, checkpoint)

Each binding's load and generation option code must pass exactly the table's keys of that scope (the keys
are read from the builder's source: Rust's LoadOptions/GenerateOptions::raw, Go's build methods, Java's
build methods). The CLI and moert serve may pass only keys of the table, and each of their functions keys
of one scope (an options object goes to one call); their keys are the literals passed to moert_options_*
and those of the flag tables their loops pass on. The Python binding is checked at run time by its own
test (bindings/python/tests/test_options.py, which imports this file to read the table).
"""
import ast
import difflib
import os
import re
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TABLE = os.path.join(ROOT, "capi", "src", "option_table.inc")
HEADER = os.path.join(ROOT, "capi", "include", "moert", "moert.h")
SCOPES = {"Load": "load", "Generate": "generate", "Checkpoint": "checkpoint", "Quantize": "quantize"}
KINDS = ("Int", "Float", "String", "StringList", "IntList")
LINE = re.compile(r'^MOERT_OPTION\(("(?:[^"\\]|\\.)*"),\s*(\w+),\s*(\w+),\s*(.*)\)\s*$')


class Option:
    def __init__(self, key, scope, kind, default, lo, hi, choices, doc):
        self.key, self.scope, self.kind, self.default = key, scope, kind, default
        self.min, self.max, self.doc = lo, hi, doc
        self.choices = choices.split("|") if choices else []


def read_table(path=TABLE):
    """The table's lines as Options, in order. Raises ValueError naming a malformed line."""
    options = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.startswith("MOERT_OPTION"):
                continue
            m = LINE.match(line.rstrip("\n"))
            if not m:
                raise ValueError("%s:%d: not MOERT_OPTION(key, scope, type, ...) on one line" % (path, n))
            key = ast.literal_eval(m.group(1))
            scope, kind = m.group(2), m.group(3)
            if scope not in SCOPES or kind not in KINDS:
                raise ValueError("%s:%d: scope %s or type %s unknown" % (path, n, scope, kind))
            rest = ast.literal_eval("(" + m.group(4) + ",)")
            if len(rest) != 5:
                raise ValueError("%s:%d: want default, min, max, choices, doc after the type" % (path, n))
            options.append(Option(key, SCOPES[scope], kind, *rest))
    return options


def keys(options, scope):
    return [o.key for o in options if o.scope == scope]


# ---- moert.h -------------------------------------------------------------------------------------------

BEGIN = " * BEGIN option keys: generated from capi/src/option_table.inc by `scripts/option_table.py docs --write`"
END = " * END option keys"
WIDTH = 110
HEADINGS = {"load": "Model load keys (moert_model_load):",
            "generate": "Generation keys (moert_generate_*):",
            "checkpoint": "Checkpoint shape keys (moert_checkpoint_write_random):",
            "quantize": "Checkpoint quantisation keys (moert_checkpoint_quantize):"}


def number(v):
    if float(v).is_integer() and abs(v) < 1e15:
        return str(int(v))
    return "%g" % v


def quoted_choices(choices):
    q = ['"%s"' % c for c in choices]
    return q[0] if len(q) == 1 else ", ".join(q[:-1]) + " or " + q[-1]


def describe(o):
    """'"key" int, 0 to 4096, default 0: doc' (the table's facts, then its doc)."""
    if o.kind == "Int" and o.choices:
        facts = "int, " + (o.choices[0] if len(o.choices) == 1 else ", ".join(o.choices[:-1]) + " or " + o.choices[-1])
    elif o.kind == "Int":
        facts = "int, %s %s %s" % (number(o.min), "or" if o.max - o.min == 1 else "to", number(o.max))
    elif o.kind == "Float":
        facts = "number, %s to %s" % (number(o.min), number(o.max))
    elif o.kind == "String":
        facts = "string, " + (quoted_choices(o.choices) if o.choices else "any")
    elif o.kind == "StringList":
        facts = "list of strings (moert_options_add_string)"
    else:
        facts = "list of ints %s to %s (moert_options_add_int)" % (number(o.min), number(o.max))
    if o.default:
        facts += ", default " + (('"%s"' % o.default) if o.kind == "String" else o.default)
    return '"%s" %s: %s' % (o.key, facts, o.doc)


def docs_block(options):
    lines = [BEGIN]
    for scope, heading in HEADINGS.items():
        lines.append(" * " + heading)
        for o in options:
            if o.scope == scope:
                lines += textwrap.wrap(describe(o), WIDTH, initial_indent=" *   ", subsequent_indent=" *       ",
                                       break_on_hyphens=False, break_long_words=False)
    lines.append(END)
    return lines


def docs(mode):
    options = read_table()
    for o in options:
        if "*/" in o.doc or not o.doc.strip():
            sys.exit("option_table.py: the doc of '%s' is empty or holds */" % o.key)
    with open(HEADER, encoding="utf-8") as f:
        text = f.read().split("\n")
    try:
        a, b = text.index(BEGIN), text.index(END)
    except ValueError:
        sys.exit("option_table.py: %s lacks the lines\n%s\n%s" % (HEADER, BEGIN, END))
    new = text[:a] + docs_block(options) + text[b + 1:]
    if new == text:
        print("option_table.py: moert.h's option keys are up to date")
        return 0
    if mode == "--check":
        sys.stdout.writelines(difflib.unified_diff([l + "\n" for l in text], [l + "\n" for l in new],
                                                   "moert.h", "moert.h from the table"))
        print("option_table.py: moert.h's option keys differ from capi/src/option_table.inc: run "
              "scripts/option_table.py docs --write", file=sys.stderr)
        return 1
    with open(HEADER, "w", encoding="utf-8") as f:
        f.write("\n".join(new))
    print("option_table.py: rewrote moert.h's option keys")
    return 0


# ---- bindings, CLI, serve ------------------------------------------------------------------------------

def block(text, start, path):
    """From the line that starts with `start` to the next line that is a lone closing brace."""
    i = text.find(start)
    if i < 0:
        raise ValueError("%s: no %r" % (path, start))
    j = text.find("\n}\n", i)
    return text[i:j if j > 0 else len(text)]


def source(rel):
    path = os.path.join(ROOT, rel)
    with open(path, encoding="utf-8") as f:
        return path, f.read()


RUST_CALL = re.compile(r'\.(?:int|float|string|add_strings|add_ints)\(\s*"([^"]+)"')
GO_CALL = re.compile(r'\bo\.(?:setInt|setBool|setFloat|setString|addString|addInt)\(\s*"([^"]+)"')
JAVA_CALL = re.compile(r'moert_native\.options_\w+\(\s*o,\s*"([^"]+)"')


def binding_keys(name):
    """{scope: [keys the binding's option code passes]} for rust, go and java."""
    if name == "rust":
        path, text = source("bindings/rust/moert/src/lib.rs")
        return {"load": RUST_CALL.findall(block(text, "impl LoadOptions {", path)),
                "generate": RUST_CALL.findall(block(text, "impl GenerateOptions {", path))}
    if name == "go":
        path, text = source("bindings/go/moert.go")
        return {"load": GO_CALL.findall(block(text, "func (l *LoadOptions) build()", path)),
                "generate": GO_CALL.findall(block(text, "func (g *GenerateOptions) build()", path))}
    if name == "java":
        out = {}
        for scope, cls in (("load", "LoadOptions"), ("generate", "GenerateOptions")):
            path, text = source("bindings/java/src/org/moert/%s.java" % cls)
            out[scope] = JAVA_CALL.findall(block(text, "    org.moert.internal.Options build()", path))
        return out
    raise ValueError("no binding " + name)


def check_binding(name, options):
    problems = []
    for scope, passed in binding_keys(name).items():
        want = keys(options, scope)
        for k in passed:
            if k not in want:
                o = next((o for o in options if o.key == k), None)
                problems.append("passes '%s' as a %s option, but the table %s" %
                                (k, scope, "has it as a %s option" % o.scope if o else "has no such key"))
        for k in want:
            if k not in passed:
                problems.append("lacks the %s option '%s'" % (scope, k))
        print("%s %s options: %s" % (name, scope, " ".join(dict.fromkeys(passed))))
    return problems


# A C/C++ function definition at column 0 (its name before the parameters) and the option calls in it.
FUNCTION = re.compile(r"^[A-Za-z][^;()=]*?\b(\w+)\([^;]*\)\s*(?:const\s*)?\{\s*$", re.M)
C_CALL = re.compile(r'moert_options_(?:set|add)_\w+\(\s*[\w.>-]+,\s*"([^"]+)"')
# A key in a table of flags or fields that a loop passes on: {"flag", "key", ...} or {"key", &field}. Taken
# from these: literals the table has, and those that look like keys where the entry is surely a key table
# (a flag with '-' before it, or a "model." shape key); other brace initializers hold file names and JSON
# fields.
BRACED = re.compile(r'\{\s*"([^"]+)"\s*,\s*(?:"([^"]+)"|&)')
KEYLIKE = re.compile(r"^[a-z][a-z0-9]*(?:[._][a-z0-9]+)*$")


def c_keys(text, table):
    """[(function, key)] for the keys a C/C++ file passes to moert_options_*."""
    starts = [(m.start(), m.group(1)) for m in FUNCTION.finditer(text)]

    def function_at(pos):
        name = "(file scope)"  # a table of keys outside any function
        for s, n in starts:
            if s > pos:
                break
            name = n
        return name

    found = [(function_at(m.start()), m.group(1)) for m in C_CALL.finditer(text)]
    for m in BRACED.finditer(text):
        first, second = m.groups()
        key = first if second is None else second
        if key in table or (second is not None and KEYLIKE.match(key) and ("-" in first or key.startswith("model."))):
            found.append((function_at(m.start()), key))
    return found


def check_c(name, options):
    dirs = {"cli": ["samples/cli"], "serve": ["samples/serve"]}[name]
    table = {o.key: o for o in options}
    problems, total = [], 0
    for d in dirs:
        for f in sorted(os.listdir(os.path.join(ROOT, d))):
            if not f.endswith((".cpp", ".h")):
                continue
            rel = os.path.join(d, f)
            _, text = source(rel)
            scopes = {}
            for fn, k in c_keys(text, table):
                total += 1
                if k not in table:
                    problems.append("%s: %s() passes '%s', which the table does not have" % (rel, fn, k))
                    continue
                scopes.setdefault(fn, {}).setdefault(table[k].scope, []).append(k)
            for fn, by_scope in scopes.items():
                print("%s %s: %s" % (rel, fn if fn.startswith("(") else fn + "()", "; ".join("%s: %s" % (s, " ".join(sorted(set(ks))))
                                                         for s, ks in sorted(by_scope.items()))))
                if len(by_scope) > 1:
                    problems.append("%s: %s() mixes keys of scopes %s in one options object" %
                                    (rel, fn, ", ".join(sorted(by_scope))))
    if total == 0:
        problems.append("found no option keys in %s: has its option code moved?" % ", ".join(dirs))
    return problems


def check(name):
    options = read_table()
    problems = check_c(name, options) if name in ("cli", "serve") else check_binding(name, options)
    for p in problems:
        print("option_table.py: %s: %s" % (name, p), file=sys.stderr)
    if problems:
        print("option_table.py: %s's option code differs from capi/src/option_table.inc" % name, file=sys.stderr)
        return 1
    print("option_table.py: %s's option keys match the table" % name)
    return 0


def main(argv):
    if len(argv) >= 2 and argv[0] == "docs" and argv[1] in ("--write", "--check"):
        return docs(argv[1])
    if len(argv) == 2 and argv[0] == "check" and argv[1] in ("rust", "go", "java", "cli", "serve"):
        return check(argv[1])
    if argv and argv[0] == "list":
        for o in read_table():
            if len(argv) == 1 or o.scope == argv[1]:
                print(o.key)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
