// jinja2's grammar, as its parser reads it (precedence from loosest: if-else, or, and, not, comparisons and
// `in`, + -, ~, * / // %, **, unary - +, then filters and tests, then postfix . [] ()).
#include <algorithm>
#include <initializer_list>

#include "tokenizer/jinja_ast.h"
#include "tokenizer/jinja_lexer.h"

namespace moert::tok::jinja {

Expr::~Expr() {
  std::vector<ExprPtr> pending;
  auto take = [&pending](Expr& e) {
    for (auto& a : e.args)
      if (a) pending.push_back(std::move(a));
    for (auto& kv : e.kwargs)
      if (kv.second) pending.push_back(std::move(kv.second));
  };
  take(*this);
  while (!pending.empty()) {
    ExprPtr e = std::move(pending.back());
    pending.pop_back();
    take(*e);
  }  // each e is destroyed here without children
}

namespace {

constexpr int kMaxDepth =
    200;  // nesting of expressions and blocks: deeper is an error, never a stack overflow

class Parser {
 public:
  explicit Parser(std::vector<Segment> segments) : segs_(std::move(segments)) {}

  Body parse() {
    std::string ender;
    Body body = parse_body({}, &ender);
    return body;
  }

 private:
  std::vector<Segment> segs_;
  size_t pos_ = 0;
  std::vector<Token> toks_;
  size_t ti_ = 0;
  int line_ = 1;
  int depth_ = 0;
  int loops_ = 0;         // enclosing for loops (break/continue are allowed inside one)
  size_t loop_refs_ = 0;  // names `loop` parsed so far

  struct Deeper {
    Parser* p;
    explicit Deeper(Parser* parser) : p(parser) {
      if (++p->depth_ > kMaxDepth) syntax_error(p->line_, "nested too deeply");
    }
    ~Deeper() { --p->depth_; }
  };

  // ------------------------------------------------------------------------------------------- tokens
  const Token& peek(size_t ahead = 0) const { return toks_[std::min(ti_ + ahead, toks_.size() - 1)]; }
  Token next() { return toks_[ti_ < toks_.size() - 1 ? ti_++ : ti_]; }
  bool is_op(const char* op, size_t ahead = 0) const {
    const Token& t = peek(ahead);
    return t.kind == Token::kOp && t.text == op;
  }
  bool is_name(const char* name, size_t ahead = 0) const {
    const Token& t = peek(ahead);
    return t.kind == Token::kName && t.text == name;
  }
  bool skip_op(const char* op) {
    if (!is_op(op)) return false;
    ++ti_;
    return true;
  }
  bool skip_name(const char* name) {
    if (!is_name(name)) return false;
    ++ti_;
    return true;
  }
  std::string describe(const Token& t) const {
    switch (t.kind) {
      case Token::kEnd:
        return "the end of the tag";
      case Token::kString:
        return "a string";
      default:
        return "'" + t.text + "'";
    }
  }
  [[noreturn]] void unexpected(const std::string& wanted) const {
    syntax_error(line_, "expected " + wanted + ", got " + describe(peek()));
  }
  void expect_op(const char* op) {
    if (!skip_op(op)) unexpected(std::string("'") + op + "'");
  }
  std::string expect_name() {
    if (peek().kind != Token::kName) unexpected("a name");
    return next().text;
  }
  void expect_end() {
    if (peek().kind != Token::kEnd) unexpected("the end of the tag");
  }

  ExprPtr make(ExprKind kind) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line_;
    return e;
  }
  ExprPtr make(ExprKind kind, ExprPtr a, ExprPtr b = nullptr) {
    ExprPtr e = make(kind);
    e->args.push_back(std::move(a));
    if (b) e->args.push_back(std::move(b));
    return e;
  }

  // ---------------------------------------------------------------------------------------- statements
  // Parses nodes until a block tag whose keyword is one of enders (then *ender is it, and the tokens stand
  // after the keyword) or the end of the template (only where enders is empty).
  Body parse_body(std::initializer_list<const char*> enders, std::string* ender) {
    Deeper guard(this);
    Body body;
    const int start_line = line_;
    while (pos_ < segs_.size()) {
      Segment& seg = segs_[pos_++];
      line_ = seg.line;
      if (seg.kind == Segment::kText) {
        auto n = node(NodeKind::kText);
        n->text = std::move(seg.text);
        body.push_back(std::move(n));
        continue;
      }
      toks_ = tokenize(seg.text, seg.line);
      ti_ = 0;
      if (seg.kind == Segment::kExpr) {
        auto n = node(NodeKind::kOutput);
        n->expr = parse_tuple();
        expect_end();
        body.push_back(std::move(n));
        continue;
      }
      if (peek().kind != Token::kName) unexpected("a statement");
      const std::string keyword = next().text;
      for (const char* e : enders)
        if (keyword == e) {
          *ender = keyword;
          return body;
        }
      parse_statement(keyword, &body);
    }
    if (enders.size() != 0) {
      std::string list;
      for (const char* e : enders) list += std::string(list.empty() ? "" : " or ") + "'" + e + "'";
      syntax_error(start_line, "the block opened here has no " + list);
    }
    return body;
  }

  std::unique_ptr<Node> node(NodeKind kind) {
    auto n = std::make_unique<Node>();
    n->kind = kind;
    n->line = line_;
    return n;
  }

  void parse_statement(const std::string& keyword, Body* body) {
    if (keyword == "if") return body->push_back(parse_if());
    if (keyword == "for") return body->push_back(parse_for());
    if (keyword == "set") return body->push_back(parse_set());
    if (keyword == "macro") return body->push_back(parse_macro());
    if (keyword == "break" || keyword == "continue") {
      if (loops_ == 0) syntax_error(line_, "'" + keyword + "' outside a for loop");
      expect_end();
      return body->push_back(node(keyword == "break" ? NodeKind::kBreak : NodeKind::kContinue));
    }
    if (keyword == "filter") {
      auto n = node(NodeKind::kFilterBlock);
      n->expr = parse_filters(nullptr, /*first_filter_without_bar=*/true);
      expect_end();
      std::string e;
      n->body = parse_body({"endfilter"}, &e);
      expect_end();
      return body->push_back(std::move(n));
    }
    if (keyword == "generation") {
      auto n = node(NodeKind::kBlock);
      expect_end();
      std::string e;
      n->body = parse_body({"endgeneration"}, &e);
      expect_end();
      return body->push_back(std::move(n));
    }
    static const char* kKnown[] = {"include", "import", "from",       "extends", "block",
                                   "call",    "with",   "autoescape", "do",      "trans"};
    for (const char* k : kKnown)
      if (keyword == k) syntax_error(line_, "the '" + keyword + "' tag is not supported");
    syntax_error(line_, "unknown or unexpected tag '" + keyword + "'");
  }

  std::unique_ptr<Node> parse_if() {
    auto n = node(NodeKind::kIf);
    ExprPtr cond = parse_expr();
    expect_end();
    std::string e;
    Body b = parse_body({"elif", "else", "endif"}, &e);
    n->branches.emplace_back(std::move(cond), std::move(b));
    while (e == "elif") {
      cond = parse_expr();
      expect_end();
      b = parse_body({"elif", "else", "endif"}, &e);
      n->branches.emplace_back(std::move(cond), std::move(b));
    }
    if (e == "else") {
      expect_end();
      n->else_body = parse_body({"endif"}, &e);
    }
    expect_end();
    return n;
  }

  std::unique_ptr<Node> parse_for() {
    auto n = node(NodeKind::kFor);
    do {
      n->targets.push_back(expect_name());
    } while (skip_op(","));
    if (!skip_name("in")) unexpected("'in'");
    n->expr = parse_tuple(/*with_cond=*/false);
    if (skip_name("if")) n->cond = parse_expr();
    if (is_name("recursive")) syntax_error(line_, "recursive for loops are not supported");
    expect_end();
    std::string e;
    ++loops_;
    const size_t refs = loop_refs_;
    n->body = parse_body({"else", "endfor"}, &e);
    n->uses_loop = loop_refs_ != refs;
    --loops_;
    if (e == "else") {
      expect_end();
      n->else_body = parse_body({"endfor"}, &e);
    }
    expect_end();
    return n;
  }

  std::unique_ptr<Node> parse_set() {
    auto n = node(NodeKind::kSet);
    n->targets.push_back(expect_name());
    if (skip_op(".")) {
      n->attr_target = true;
      n->targets.push_back(expect_name());
    } else {
      while (skip_op(",")) n->targets.push_back(expect_name());
    }
    if (skip_op("=")) {
      n->expr = parse_tuple();
      expect_end();
      return n;
    }
    if (n->attr_target || n->targets.size() != 1) unexpected("'='");
    if (is_op("|")) syntax_error(line_, "filtered block assignments are not supported");
    expect_end();
    n->kind = NodeKind::kSetBlock;
    std::string e;
    const int loops = loops_;
    loops_ = 0;
    n->body = parse_body({"endset"}, &e);
    loops_ = loops;
    expect_end();
    return n;
  }

  std::unique_ptr<Node> parse_macro() {
    auto n = node(NodeKind::kMacro);
    n->name = expect_name();
    expect_op("(");
    while (!skip_op(")")) {
      if (!n->params.empty()) expect_op(",");
      if (skip_op(")")) break;  // a trailing comma
      n->params.push_back(expect_name());
      n->defaults.push_back(skip_op("=") ? parse_expr() : nullptr);
    }
    expect_end();
    std::string e;
    const int loops = loops_;
    loops_ = 0;
    n->body = parse_body({"endmacro"}, &e);
    loops_ = loops;
    if (peek().kind == Token::kName) next();  // {% endmacro name %}
    expect_end();
    return n;
  }

  // --------------------------------------------------------------------------------------- expressions
  // An expression, or a tuple of them without parentheses (`a, b`).
  ExprPtr parse_tuple(bool with_cond = true) {
    ExprPtr first = parse_expr(with_cond);
    if (!is_op(",")) return first;
    ExprPtr t = make(ExprKind::kTuple);
    t->args.push_back(std::move(first));
    while (skip_op(",")) {
      if (peek().kind == Token::kEnd || is_op(")") || is_name("if")) break;
      t->args.push_back(parse_expr(with_cond));
    }
    return t;
  }

  ExprPtr parse_expr(bool with_cond = true) {
    Deeper guard(this);
    ExprPtr e = parse_or();
    if (!with_cond) return e;
    while (skip_name("if")) {
      ExprPtr cond = parse_or();
      ExprPtr alt = skip_name("else") ? parse_expr() : nullptr;
      ExprPtr c = make(ExprKind::kCond);
      c->args.push_back(std::move(e));
      c->args.push_back(std::move(cond));
      c->args.push_back(std::move(alt));
      e = std::move(c);
    }
    return e;
  }

  ExprPtr parse_or() {
    ExprPtr e = parse_and();
    while (skip_name("or")) e = make(ExprKind::kOr, std::move(e), parse_and());
    return e;
  }

  ExprPtr parse_and() {
    ExprPtr e = parse_not();
    while (skip_name("and")) e = make(ExprKind::kAnd, std::move(e), parse_not());
    return e;
  }

  ExprPtr parse_not() {
    if (skip_name("not")) {
      Deeper guard(this);
      return make(ExprKind::kNot, parse_not());
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    ExprPtr first = parse_math1();
    ExprPtr c;
    for (;;) {
      std::string op;
      static const char* kOps[] = {"==", "!=", "<", "<=", ">", ">="};
      for (const char* o : kOps)
        if (is_op(o)) op = o;
      if (!op.empty()) {
        ++ti_;
      } else if (skip_name("in")) {
        op = "in";
      } else if (is_name("not") && is_name("in", 1)) {
        ti_ += 2;
        op = "notin";
      } else {
        break;
      }
      if (!c) {
        c = make(ExprKind::kCompare);
        c->args.push_back(std::move(first));
      }
      c->ops.push_back(op);
      c->args.push_back(parse_math1());
    }
    return c ? std::move(c) : std::move(first);
  }

  ExprPtr binary(const std::string& op, ExprPtr a, ExprPtr b) {
    ExprPtr e = make(ExprKind::kBinary, std::move(a), std::move(b));
    e->name = op;
    return e;
  }

  ExprPtr parse_math1() {
    ExprPtr e = parse_concat();
    while (is_op("+") || is_op("-")) {
      const std::string op = next().text;
      e = binary(op, std::move(e), parse_concat());
    }
    return e;
  }

  ExprPtr parse_concat() {
    ExprPtr e = parse_math2();
    while (skip_op("~")) e = binary("~", std::move(e), parse_math2());
    return e;
  }

  ExprPtr parse_math2() {
    ExprPtr e = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const std::string op = next().text;
      e = binary(op, std::move(e), parse_pow());
    }
    return e;
  }

  ExprPtr parse_pow() {
    ExprPtr e = parse_unary();
    while (skip_op("**")) e = binary("**", std::move(e), parse_unary());
    return e;
  }

  ExprPtr parse_unary(bool with_filter = true) {
    Deeper guard(this);
    ExprPtr e;
    if (skip_op("-")) {
      e = make(ExprKind::kNeg, parse_unary(false));
    } else if (skip_op("+")) {
      e = make(ExprKind::kPos, parse_unary(false));
    } else {
      e = parse_primary();
    }
    e = parse_postfix(std::move(e));
    if (with_filter) e = parse_filters(std::move(e), false);
    return e;
  }

  ExprPtr parse_primary() {
    const Token t = peek();
    if (t.kind == Token::kName) {
      ++ti_;
      ExprPtr e = make(ExprKind::kLiteral);
      if (t.text == "true" || t.text == "True") {
        e->literal = Value::from(true);
      } else if (t.text == "false" || t.text == "False") {
        e->literal = Value::from(false);
      } else if (t.text == "none" || t.text == "None") {
        e->literal = Value::none();
      } else {
        e->kind = ExprKind::kName;
        e->name = t.text;
        if (t.text == "loop") ++loop_refs_;
      }
      return e;
    }
    if (t.kind == Token::kString) {
      std::string s;
      while (peek().kind == Token::kString) s += next().text;  // adjacent literals concatenate
      ExprPtr e = make(ExprKind::kLiteral);
      e->literal = Value::from(std::move(s));
      return e;
    }
    if (t.kind == Token::kInt || t.kind == Token::kFloat) {
      ++ti_;
      ExprPtr e = make(ExprKind::kLiteral);
      e->literal = t.kind == Token::kInt ? Value::from(t.integer) : Value::from(t.number);
      return e;
    }
    if (skip_op("(")) {
      if (skip_op(")")) return make(ExprKind::kTuple);
      ExprPtr e = parse_expr();
      if (is_op(",")) {
        ExprPtr tup = make(ExprKind::kTuple);
        tup->args.push_back(std::move(e));
        while (skip_op(",")) {
          if (is_op(")")) break;
          tup->args.push_back(parse_expr());
        }
        e = std::move(tup);
      }
      expect_op(")");
      return e;
    }
    if (skip_op("[")) {
      ExprPtr e = make(ExprKind::kList);
      while (!skip_op("]")) {
        if (!e->args.empty()) expect_op(",");
        if (skip_op("]")) break;
        e->args.push_back(parse_expr());
      }
      return e;
    }
    if (skip_op("{")) {
      ExprPtr e = make(ExprKind::kDict);
      while (!skip_op("}")) {
        if (!e->args.empty()) expect_op(",");
        if (skip_op("}")) break;
        e->args.push_back(parse_expr());
        expect_op(":");
        e->args.push_back(parse_expr());
      }
      return e;
    }
    unexpected("an expression");
  }

  ExprPtr parse_postfix(ExprPtr e) {
    for (;;) {
      if (skip_op(".")) {
        if (peek().kind == Token::kInt) {
          ExprPtr idx = make(ExprKind::kLiteral);
          idx->literal = Value::from(next().integer);
          e = make(ExprKind::kItem, std::move(e), std::move(idx));
        } else {
          ExprPtr a = make(ExprKind::kAttr, std::move(e));
          a->name = expect_name();
          e = std::move(a);
        }
      } else if (skip_op("[")) {
        e = parse_subscript(std::move(e));
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr obj) {
    Deeper guard(this);
    ExprPtr parts[3];
    bool slice = false;
    for (int k = 0; k < 3; ++k) {
      if (!is_op(":") && !is_op("]")) parts[k] = parse_expr();
      if (k < 2 && skip_op(":")) {
        slice = true;
        continue;
      }
      break;
    }
    expect_op("]");
    if (!slice) {
      if (!parts[0]) unexpected("a subscript");
      return make(ExprKind::kItem, std::move(obj), std::move(parts[0]));
    }
    ExprPtr s = make(ExprKind::kSlice);
    s->args.push_back(std::move(obj));
    for (auto& p : parts) s->args.push_back(std::move(p));
    return s;
  }

  // Call arguments after '(': positional, then name=value.
  void parse_args(Expr* into) {
    Deeper guard(this);
    expect_op("(");
    for (bool first = true; !skip_op(")"); first = false) {
      if (!first) {
        expect_op(",");
        if (skip_op(")")) break;  // a trailing comma
      }
      if (is_op("*") || is_op("**")) syntax_error(line_, "*args and **kwargs are not supported");
      if (peek().kind == Token::kName && is_op("=", 1)) {
        std::string key = next().text;
        ++ti_;
        into->kwargs.emplace_back(std::move(key), parse_expr());
      } else {
        if (!into->kwargs.empty()) syntax_error(line_, "a positional argument after a keyword argument");
        into->args.push_back(parse_expr());
      }
    }
  }

  ExprPtr parse_call(ExprPtr callee) {
    ExprPtr c = make(ExprKind::kCall, std::move(callee));
    parse_args(c.get());
    return c;
  }

  // Filters (|name(args)), tests (is [not] name args) and calls after an operand.
  ExprPtr parse_filters(ExprPtr e, bool first_filter_without_bar) {
    for (;;) {
      if (first_filter_without_bar || skip_op("|")) {
        first_filter_without_bar = false;
        ExprPtr f = make(ExprKind::kFilter);
        f->args.push_back(std::move(e));
        f->name = expect_name();
        while (skip_op(".")) f->name += "." + expect_name();
        if (is_op("(")) parse_args(f.get());
        e = std::move(f);
      } else if (skip_name("is")) {
        ExprPtr t = make(ExprKind::kTest);
        t->negated = skip_name("not");
        t->args.push_back(std::move(e));
        t->name = expect_name();
        while (skip_op(".")) t->name += "." + expect_name();
        const Token& n = peek();
        if (is_op("(")) {
          parse_args(t.get());
        } else if ((n.kind == Token::kName || n.kind == Token::kString || n.kind == Token::kInt ||
                    n.kind == Token::kFloat || is_op("[") || is_op("{")) &&
                   !is_name("else") && !is_name("or") && !is_name("and")) {
          // jinja2 takes one bare argument: `x is divisibleby 3`, `x is sameas false`.
          t->args.push_back(parse_postfix(parse_primary()));
        }
        e = std::move(t);
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }
};

}  // namespace

Body parse_template(const std::string& source) {
  return Parser(split_template(source)).parse();
}

}  // namespace moert::tok::jinja
