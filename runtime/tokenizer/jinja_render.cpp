// Runs a parsed template: jinja2's scoping (a for loop's body is a fresh scope each iteration, so what it
// sets is gone after it; if blocks have no scope; a macro sees its arguments and the template's top level)
// and its evaluation rules.
#include "tokenizer/jinja.h"

#include <unordered_map>

#include "tokenizer/jinja_ast.h"
#include "tokenizer/jinja_builtins.h"
#include "util/error.h"

namespace moert::tok::jinja {

struct Template::Parsed {
  Body body;
};

namespace {

constexpr int kMaxCallDepth = 100;
constexpr int kMaxRunDepth = 256;

enum class Flow { kNormal, kBreak, kContinue };

class Renderer {
 public:
  explicit Renderer(const Dict& context) : globals_(builtin_globals()) {
    scopes_.emplace_back();
    for (const auto& [k, v] : context.items) scopes_[0][to_str(dict_key_value(k))] = v;
    // namespace() as the globals make it, each one remembered for the tear-down.
    const Function make = *globals_.find("namespace")->fn;
    globals_.set("namespace", Value::function([this, make](const Args& a) {
                   Value ns = make(a);
                   namespaces_.push_back(ns.dict);
                   return ns;
                 }));
  }

  // A namespace may hold itself or a chain of others: emptying each one here frees them all, without
  // recursion.
  ~Renderer() {
    scopes_.clear();
    for (const auto& d : namespaces_) d->clear();
  }
  Renderer(const Renderer&) = delete;
  Renderer& operator=(const Renderer&) = delete;

  std::string run(const Body& body) {
    WorkBudget budget;
    exec(body);
    return std::move(out_);
  }

 private:
  using Scope = std::unordered_map<std::string, Value>;
  Dict globals_;
  std::vector<Scope> scopes_;
  size_t frame_ = 0;  // the innermost macro call's first scope (0: none); scope 0 is always visible
  std::string out_;
  size_t steps_ = 0;
  int call_depth_ = 0;
  const Value* block_input_ = nullptr;  // the text a {% filter %} block filters
  std::vector<std::shared_ptr<Dict>> namespaces_;
  int depth_ = 0;  // statements and expressions being run, nested: bounded, so the C++ stack is too

  struct Deeper {
    Renderer* r;
    explicit Deeper(Renderer* renderer) : r(renderer) {
      if (++r->depth_ > kMaxRunDepth) {
        --r->depth_;
        render_error("the template nests statements, expressions and macro calls more than 256 deep");
      }
    }
    ~Deeper() { --r->depth_; }
  };

  void step() {
    charge_work(16);  // an iteration's own values
    if (++steps_ > kMaxSteps) render_error("more than 262144 loop iterations and macro calls");
  }

  Value lookup(const std::string& name) const {
    for (size_t i = scopes_.size(); i-- > frame_;) {
      auto it = scopes_[i].find(name);
      if (it != scopes_[i].end()) return it->second;
    }
    if (frame_ > 0) {
      auto it = scopes_[0].find(name);
      if (it != scopes_[0].end()) return it->second;
    }
    if (const Value* g = globals_.find(name)) return *g;
    return Value::undefined("'" + name + "' is undefined");
  }

  void emit(const std::string& s) {
    charge_work(1 + s.size() / 16);
    out_ += s;
    check_string_size(out_.size());
  }

  // ------------------------------------------------------------------------------------------ statements
  Flow exec(const Body& body) {
    for (const auto& n : body) {
      const Flow f = exec_node(*n);
      if (f != Flow::kNormal) return f;
    }
    return Flow::kNormal;
  }

  Flow exec_node(const Node& n) {
    try {
      Deeper guard(this);
      return exec_checked(n);
    } catch (const TemplateError& e) {
      fail(ErrorCode::kInvalidArgument, "chat template: line " + std::to_string(n.line) + ": " + e.what());
    }
  }

  // What body renders, and how it ended (a break or continue inside a {% filter %} leaves it).
  std::string capture(const Body& body, Flow* flow = nullptr) {
    std::string saved = std::move(out_);
    out_.clear();
    const Flow f = exec(body);
    if (flow) *flow = f;
    std::string got = std::move(out_);
    out_ = std::move(saved);
    return got;
  }

  void assign(const std::vector<std::string>& targets, const Value& v) {
    Scope& scope = scopes_.back();
    if (targets.size() == 1) {
      scope[targets[0]] = v;
      return;
    }
    const std::vector<Value> items = iterate(v);
    if (items.size() != targets.size())
      render_error(items.size() < targets.size() ? "not enough values to unpack"
                                                 : "too many values to unpack");
    for (size_t i = 0; i < targets.size(); ++i) scope[targets[i]] = items[i];
  }

  Flow exec_checked(const Node& n) {
    switch (n.kind) {
      case NodeKind::kText:
        emit(n.text);
        return Flow::kNormal;
      case NodeKind::kOutput:
        emit(to_str(eval(*n.expr)));
        return Flow::kNormal;
      case NodeKind::kIf:
        for (const auto& [cond, body] : n.branches)
          if (truthy(eval(*cond))) return exec(body);
        return exec(n.else_body);
      case NodeKind::kFor:
        return exec_for(n);
      case NodeKind::kSet:
        if (n.attr_target) {
          const Value ns = lookup(n.targets[0]);
          if (ns.kind != Kind::kNamespace) render_error("cannot assign attribute on non-namespace object");
          ns.dict->set(n.targets[1], eval(*n.expr));
        } else {
          assign(n.targets, eval(*n.expr));
        }
        return Flow::kNormal;
      case NodeKind::kSetBlock:
        scopes_.back()[n.targets[0]] = Value::from(capture(n.body));
        return Flow::kNormal;
      case NodeKind::kMacro:
        scopes_.back()[n.name] = make_macro(n);
        return Flow::kNormal;
      case NodeKind::kBreak:
        return Flow::kBreak;
      case NodeKind::kContinue:
        return Flow::kContinue;
      case NodeKind::kFilterBlock: {
        Flow flow = Flow::kNormal;
        const Value text = Value::from(capture(n.body, &flow));
        if (flow != Flow::kNormal) return flow;  // jinja2 prints nothing of a block a break left
        const Value* saved = block_input_;
        block_input_ = &text;
        const Value r = eval(*n.expr);
        block_input_ = saved;
        emit(to_str(r));
        return Flow::kNormal;
      }
      case NodeKind::kBlock:
        return exec(n.body);
    }
    return Flow::kNormal;
  }

  Flow exec_for(const Node& n) {
    const Value seq = eval(*n.expr);
    if (seq.is_none()) render_error("'NoneType' object is not iterable");
    std::vector<Value> items = iterate(seq);
    if (n.cond) {  // the loop's `if` sees the targets, not loop
      std::vector<Value> kept;
      scopes_.emplace_back();
      for (Value& it : items) {
        step();
        assign(n.targets, it);
        if (truthy(eval(*n.cond))) kept.push_back(std::move(it));
      }
      scopes_.pop_back();
      items = std::move(kept);
    }
    if (items.empty()) return exec(n.else_body);
    const auto len = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < len; ++i) {
      step();
      scopes_.emplace_back();
      assign(n.targets, items[static_cast<size_t>(i)]);
      if (n.uses_loop) {
        Dict loop;
        loop.items.reserve(12);
        loop.set("index", Value::from(i + 1));
        loop.set("index0", Value::from(i));
        loop.set("revindex", Value::from(len - i));
        loop.set("revindex0", Value::from(len - i - 1));
        loop.set("first", Value::from(i == 0));
        loop.set("last", Value::from(i == len - 1));
        loop.set("length", Value::from(len));
        loop.set("depth", Value::from(int64_t{1}));
        loop.set("depth0", Value::from(int64_t{0}));
        loop.set("previtem",
                 i > 0 ? items[static_cast<size_t>(i - 1)] : Value::undefined("there is no previous item"));
        loop.set("nextitem",
                 i + 1 < len ? items[static_cast<size_t>(i + 1)] : Value::undefined("there is no next item"));
        loop.set("cycle", Value::function([i](const Args& a) {
                   if (a.positional.empty()) render_error("no items for cycling given");
                   return a.positional[static_cast<size_t>(i) % a.positional.size()];
                 }));
        scopes_.back()["loop"] = Value::from(std::move(loop));
      }
      const Flow f = exec(n.body);
      scopes_.pop_back();
      if (f == Flow::kBreak) break;
    }
    return Flow::kNormal;
  }

  // A macro sees the template's top level and, as a jinja2 closure does, the locals visible where it is
  // defined (a loop variable, an outer macro's arguments), as they are then.
  Value make_macro(const Node& n) {
    const Node* node = &n;
    auto captured = std::make_shared<Scope>();
    int depth = 0;
    for (size_t i = std::max<size_t>(frame_, 1); i < scopes_.size(); ++i)
      for (const auto& [k, v] : scopes_[i]) {
        (*captured)[k] = v;
        depth = std::max<int>(depth, v.depth);
      }
    charge_work(1 + captured->size());
    if (depth + 1 > kMaxNesting) render_error("lists and dicts nested more than 256 deep");
    Value f =
        Value::function([this, node, captured](const Args& a) { return call_macro(*node, *captured, a); });
    f.depth = static_cast<uint16_t>(depth + 1);
    return f;
  }

  Value call_macro(const Node& n, const Scope& captured, const Args& a) {
    step();
    charge_work(captured.size());
    if (a.positional.size() > n.params.size())
      render_error("macro '" + n.name + "' takes not more than " + std::to_string(n.params.size()) +
                   " argument(s)");
    for (const auto& [k, v] : a.keyword)
      if (std::find(n.params.begin(), n.params.end(), k) == n.params.end())
        render_error("macro '" + n.name + "' takes no keyword argument '" + k + "'");
    if (++call_depth_ > kMaxCallDepth) {
      --call_depth_;
      render_error("macro calls nested more than 100 deep");
    }
    const size_t saved_frame = frame_;
    const size_t saved_depth = scopes_.size();
    scopes_.push_back(captured);
    frame_ = scopes_.size() - 1;
    std::string saved_out = std::move(out_);
    out_.clear();
    try {
      for (size_t i = 0; i < n.params.size(); ++i) {
        const Value* v = find_arg(a, i, n.params[i].c_str());
        scopes_.back()[n.params[i]] =
            v               ? *v
            : n.defaults[i] ? eval(*n.defaults[i])
                            : Value::undefined("parameter '" + n.params[i] + "' was not provided");
      }
      exec(n.body);
    } catch (...) {
      scopes_.resize(saved_depth);
      frame_ = saved_frame;
      out_ = std::move(saved_out);
      --call_depth_;
      throw;
    }
    std::string result = std::move(out_);
    scopes_.resize(saved_depth);
    frame_ = saved_frame;
    out_ = std::move(saved_out);
    --call_depth_;
    return Value::from(std::move(result));
  }

  // ----------------------------------------------------------------------------------------- expressions
  Args eval_args(const Expr& e, size_t first) {
    Args a;
    for (size_t i = first; i < e.args.size(); ++i) a.positional.push_back(eval(*e.args[i]));
    for (const auto& [k, v] : e.kwargs) a.keyword.emplace_back(k, eval(*v));
    return a;
  }

  Value eval(const Expr& e) {
    Deeper guard(this);
    switch (e.kind) {
      case ExprKind::kLiteral:
        return e.literal;
      case ExprKind::kName:
        return lookup(e.name);
      case ExprKind::kList:
      case ExprKind::kTuple: {
        List l;
        for (const auto& x : e.args) l.push_back(eval(*x));
        return Value::from(std::move(l), e.kind == ExprKind::kTuple);
      }
      case ExprKind::kDict: {
        Dict d;
        for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
          const Value k = eval(*e.args[i]);
          d.set(dict_key(k), eval(*e.args[i + 1]));
        }
        return Value::from(std::move(d));
      }
      case ExprKind::kAttr:
        return get_attr(eval(*e.args[0]), e.name);
      case ExprKind::kItem: {
        const Value obj = eval(*e.args[0]);
        return get_item(obj, eval(*e.args[1]));
      }
      case ExprKind::kSlice: {
        const Value obj = eval(*e.args[0]);
        Value parts[3];
        for (int k = 0; k < 3; ++k)
          if (e.args[1 + k]) parts[k] = eval(*e.args[1 + k]);
        return get_slice(obj, parts[0], parts[1], parts[2]);
      }
      case ExprKind::kCall: {
        const Value callee = eval(*e.args[0]);
        if (callee.kind != Kind::kFunction) {
          if (callee.is_undefined()) render_error(undefined_message(callee));
          render_error(std::string("'") + type_name(callee) + "' object is not callable");
        }
        const Args a = eval_args(e, 1);
        return (*callee.fn)(a);
      }
      case ExprKind::kFilter: {
        const Value operand = e.args[0] ? eval(*e.args[0]) : (block_input_ ? *block_input_ : Value());
        const Args a = eval_args(e, 1);
        return apply_filter(e.name, operand, a);
      }
      case ExprKind::kTest: {
        const Value operand = eval(*e.args[0]);
        const Args a = eval_args(e, 1);
        return Value::from(apply_test(e.name, operand, a) != e.negated);
      }
      case ExprKind::kNot:
        return Value::from(!truthy(eval(*e.args[0])));
      case ExprKind::kNeg:
        return negate(eval(*e.args[0]));
      case ExprKind::kPos: {
        const Value v = eval(*e.args[0]);
        if (!v.is_number()) render_error(std::string("bad operand type for unary +: '") + type_name(v) + "'");
        return v;
      }
      case ExprKind::kBinary: {
        const Value a = eval(*e.args[0]);
        return binary_op(e.name, a, eval(*e.args[1]));
      }
      case ExprKind::kCompare: {
        Value left = eval(*e.args[0]);
        for (size_t i = 0; i < e.ops.size(); ++i) {
          Value right = eval(*e.args[i + 1]);
          if (!compare(e.ops[i], left, right)) return Value::from(false);
          left = std::move(right);
        }
        return Value::from(true);
      }
      case ExprKind::kAnd: {
        Value a = eval(*e.args[0]);
        return truthy(a) ? eval(*e.args[1]) : a;
      }
      case ExprKind::kOr: {
        Value a = eval(*e.args[0]);
        return truthy(a) ? a : eval(*e.args[1]);
      }
      case ExprKind::kCond:
        if (truthy(eval(*e.args[1]))) return eval(*e.args[0]);
        return e.args[2] ? eval(*e.args[2])
                         : Value::undefined("the condition was false and there is no else");
    }
    return {};
  }

  static bool compare(const std::string& op, const Value& a, const Value& b) {
    if (op == "==") return equals(a, b);
    if (op == "!=") return !equals(a, b);
    if (op == "in") return contains(b, a);
    if (op == "notin") return !contains(b, a);
    if (op == "<") return less(a, b);
    if (op == ">") return less(b, a);
    if (op == "<=") return less(a, b) || equals(a, b);
    return less(b, a) || equals(a, b);  // >=
  }
};

}  // namespace

Template::Template(const std::string& source) {
  auto p = std::make_shared<Parsed>();
  p->body = parse_template(source);
  parsed_ = std::move(p);
}
Template::Template(Template&&) noexcept = default;
Template& Template::operator=(Template&&) noexcept = default;
Template::~Template() = default;

std::string Template::render(const nlohmann::ordered_json& context) const {
  Value ctx;
  try {
    ctx = Value::from_json(context);
  } catch (const TemplateError& e) {
    fail(ErrorCode::kInvalidArgument, std::string("chat template: ") + e.what());
  }
  return render(ctx);
}

std::string Template::render(const Value& ctx) const {
  if (ctx.kind != Kind::kDict)
    fail(ErrorCode::kInvalidArgument, "chat template: the context must be an object");
  Renderer r(*ctx.dict);
  try {
    return r.run(parsed_->body);
  } catch (const TemplateError& e) {  // raised outside any statement (cannot happen; kept total)
    fail(ErrorCode::kInvalidArgument, std::string("chat template: ") + e.what());
  }
}

}  // namespace moert::tok::jinja
