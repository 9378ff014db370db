"""The binding's options against the option table (capi/src/option_table.inc): the keys the binding's own
option code passes to the C API when every keyword is given, and the keywords of its signatures and type
stubs, must be the table's keys of that scope."""
import ast
import importlib.util
import inspect
import os

import pytest

import moert
from conftest import MODEL_DIR, MTP_MODEL_DIR

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "..")
_spec = importlib.util.spec_from_file_location("option_table", os.path.join(ROOT, "scripts", "option_table.py"))
option_table = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(option_table)
TABLE = option_table.read_table()


def table_keys(scope):
    return {o.key for o in TABLE if o.scope == scope}


def valid_value(o):
    """A value the key accepts, typed as a caller would pass it."""
    if o.kind == "String":
        return o.default or o.choices[0]
    if o.kind == "StringList":  # logit_bias: the binding takes {token_id: bias}
        return {1: 5.5} if o.key == "logit_bias" else ["</s>"]
    if o.kind == "IntList":
        return [int(o.min)]
    if o.kind == "Float":
        return float(o.default) if o.default else float(o.min)
    v = int(o.default) if o.default else int(o.min)
    return bool(v) if (o.min, o.max) == (0, 1) else v


@pytest.fixture
def passed(monkeypatch):
    """The keys the binding sets on a native options object (the native calls still run: the C API
    validates each value)."""
    keys = []
    for name in ("options_set_int", "options_set_float", "options_set_string", "options_add_string",
                 "options_add_int"):
        real = getattr(moert._n, name)

        def record(o, key, value, real=real):
            keys.append(key)
            return real(o, key, value)

        monkeypatch.setattr(moert._n, name, record)
    return keys


def keywords(fn, skip):
    return {p.name for p in inspect.signature(fn).parameters.values()
            if p.kind == p.KEYWORD_ONLY or p.kind == p.POSITIONAL_OR_KEYWORD} - set(skip)


@pytest.mark.parametrize("scope,build", [("load", moert._load_options), ("generate", moert._gen_options)])
def test_option_code_passes_the_tables_keys(scope, build, passed):
    params = keywords(build, ())
    unknown = params - {o.key for o in TABLE}
    assert not unknown, "the binding takes options the table does not have: %s" % sorted(unknown)
    wrong = params - table_keys(scope)
    assert not wrong, "the binding takes %s as %s options: the table has them in another scope" % (sorted(wrong), scope)
    missing = table_keys(scope) - params
    assert not missing, "the binding lacks the table's %s options %s" % (scope, sorted(missing))
    by_key = {o.key: o for o in TABLE}
    moert._n.options_free(build(**{k: valid_value(by_key[k]) for k in params}))
    # Each keyword reaches the C API under its own name.
    assert sorted(set(passed)) == sorted(params)


def test_public_signatures_forward_every_key():
    assert keywords(moert.Model.load, ("path", "progress")) == table_keys("load")
    assert keywords(moert._gen_options, ()) == table_keys("generate")
    assert "add_generation_prompt" in keywords(moert.Model.chat, ())


def test_type_stubs_list_every_key():
    with open(os.path.join(os.path.dirname(moert.__file__), "__init__.pyi"), encoding="utf-8") as f:
        tree = ast.parse(f.read())

    def kwargs(fn):
        return {a.arg for a in fn.args.args + fn.args.kwonlyargs} - {"self", "cls"}

    fns = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            fns[node.name] = node
        elif isinstance(node, ast.ClassDef) and node.name == "Model":
            fns.update({"Model." + f.name: f for f in node.body if isinstance(f, ast.FunctionDef)})
    load = table_keys("load")
    assert kwargs(fns["load"]) - {"path", "progress"} == load
    assert kwargs(fns["Model.load"]) - {"path", "progress"} == load
    generate = table_keys("generate") - {"add_generation_prompt"}
    for name, positional in (("generate", "prompt"), ("complete", "prompt"), ("generate_resume", "data")):
        assert kwargs(fns["Model." + name]) - {positional} == generate, name
    assert kwargs(fns["Model.chat"]) - {"messages"} == table_keys("generate")


def test_a_key_of_the_wrong_scope_is_named(model):
    opts = moert._load_options(threads=1)
    try:
        with pytest.raises(moert.InvalidArgumentError, match="'threads' is a model load option"):
            moert._n.generate_text(model._handle, "x", opts)
    finally:
        moert._n.options_free(opts)


def test_cache_and_weight_check_options_reach_the_library():
    with moert.load(MTP_MODEL_DIR, threads=1, attention="absorbed", mtp=False, check_weights=False, cuda_graphs=False,
                    kv_cache_dtype="fp32", activation_dtype="fp32") as m:
        assert m.info("num_mtp_layers") == 0  # mtp=False: the module is not loaded
    with moert.load(MTP_MODEL_DIR, threads=1) as m:
        assert m.info("num_mtp_layers") == 1
    with pytest.raises(moert.UnsupportedError, match="kv_cache_dtype bf16 needs device cuda"):
        moert.load(MODEL_DIR, kv_cache_dtype="bf16")
    with pytest.raises(moert.UnsupportedError, match="activation_dtype bf16 needs device cuda"):
        moert.load(MODEL_DIR, activation_dtype="bf16")
    with pytest.raises(moert.InvalidArgumentError, match="'cuda_graphs' value 2 is out of range"):
        moert.load(MODEL_DIR, cuda_graphs=2)
