// The parsed form of a jinja template (jinja_parser.cpp builds it, jinja_render.cpp runs it).
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/jinja_value.h"

namespace moert::tok::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

enum class ExprKind {
  kLiteral,  // literal
  kName,     // name
  kList,     // args: the elements
  kTuple,    // args: the elements
  kDict,     // args: key0, value0, key1, value1, ...
  kAttr,     // args[0].name
  kItem,     // args[0][args[1]]
  kSlice,    // args[0][args[1]:args[2]:args[3]] (null where absent)
  kCall,     // args[0](args[1..], kwargs)
  kFilter,   // args[0] | name(args[1..], kwargs); args[0] is null in a {% filter %} block
  kTest,     // args[0] is [not] name(args[1..])
  kNot,      // not args[0]
  kNeg,      // -args[0]
  kPos,      // +args[0]
  kBinary,   // args[0] name args[1], name one of + - * / // % ** ~
  kCompare,  // args[0] ops[0] args[1] ops[1] args[2] ... (ops: == != < <= > >= in notin)
  kAnd,      // args[0] and args[1]
  kOr,       // args[0] or args[1]
  kCond,     // args[0] if args[1] else args[2] (args[2] null: undefined)
};

struct Expr {
  ExprKind kind;
  int line;
  Value literal;
  std::string name;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;
  bool negated = false;

  Expr() = default;
  Expr(const Expr&) = delete;
  Expr& operator=(const Expr&) = delete;
  // Iterative: a chain such as `x|e|e|...` or `a + b + ...` is as deep as it is long.
  ~Expr();
};

struct Node;
using Body = std::vector<std::unique_ptr<Node>>;

enum class NodeKind {
  kText,         // text
  kOutput,       // {{ expr }}
  kIf,           // branches (cond, body), then else_body
  kFor,          // for targets in expr [if cond]: body, else else_body
  kSet,          // targets = expr; attr_target: targets[0].targets[1] = expr
  kSetBlock,     // targets[0] = what body renders
  kMacro,        // name(params = defaults): body
  kBreak,        // {% break %}
  kContinue,     // {% continue %}
  kFilterBlock,  // expr (a kFilter without operand) applied to what body renders
  kBlock,        // body as is ({% generation %}, HF's assistant-mask marker)
};

struct Node {
  NodeKind kind;
  int line;
  std::string text;
  ExprPtr expr;
  ExprPtr cond;
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body body, else_body;
  std::vector<std::string> targets;
  bool attr_target = false;
  bool uses_loop = false;  // kFor: its body names `loop` (else the loop object is not built)
  std::string name;
  std::vector<std::string> params;
  std::vector<ExprPtr> defaults;  // one per param, null where it has none
};

// Parses a template. Throws Error(kUnsupported, "chat template: line N: ...") for a syntax error or a
// construct moert does not implement (include, extends, import, call blocks, recursive loops).
Body parse_template(const std::string& source);

}  // namespace moert::tok::jinja
