#include "kv/prefix_tree.h"

#include <algorithm>
#include <cstring>

namespace moert {

PrefixTree::PrefixTree(int64_t page_rows) : page_rows_(page_rows) {}

void PrefixTree::touch(int32_t node, uint64_t now) {
  by_use_.erase({nodes_[node].used, node});
  nodes_[node].used = now;
  by_use_.insert({now, node});
}

int32_t PrefixTree::find_child(int32_t parent, const int32_t* tokens) {
  for (int32_t c : children_of(parent)) {
    const Node& n = nodes_[c];
    if (n.tokens[0] == tokens[0] &&
        std::memcmp(n.tokens.data(), tokens, static_cast<size_t>(page_rows_) * sizeof(int32_t)) == 0)
      return c;
  }
  return -1;
}

PrefixTree::Match PrefixTree::match(const int32_t* tokens, int64_t n) {
  Match m;
  const uint64_t now = ++clock_;
  int32_t at = -1;
  while (m.tokens + page_rows_ <= n) {
    const int32_t c = find_child(at, tokens + m.tokens);
    if (c < 0) break;
    touch(c, now);
    m.pages.push_back(nodes_[c].page);
    m.tokens += page_rows_;
    at = c;
  }
  m.full_pages = static_cast<int64_t>(m.pages.size());
  // A partial block: the child sharing the longest run of the remaining tokens.
  const int64_t rest = std::min(n - m.tokens, page_rows_);
  int64_t best = 0;
  int32_t best_child = -1;
  for (int32_t c : children_of(at)) {
    const std::vector<int32_t>& t = nodes_[c].tokens;
    int64_t k = 0;
    while (k < rest && t[k] == tokens[m.tokens + k]) ++k;
    if (k > best) best = k, best_child = c;
  }
  if (best_child >= 0) {
    touch(best_child, now);
    m.pages.push_back(nodes_[best_child].page);
    m.tokens += best;
  }
  return m;
}

std::vector<int32_t> PrefixTree::insert(const int32_t* tokens, const std::vector<int32_t>& pages,
                                        int64_t full_pages) {
  std::vector<int32_t> adopted;
  const uint64_t now = ++clock_;
  int32_t at = -1;
  for (int64_t b = 0; b < full_pages; ++b) {
    const int32_t* block = tokens + b * page_rows_;
    int32_t c = find_child(at, block);
    if (c < 0) {
      if (!free_nodes_.empty()) {
        c = free_nodes_.back();
        free_nodes_.pop_back();
      } else {
        c = static_cast<int32_t>(nodes_.size());
        nodes_.emplace_back();
      }
      Node& n = nodes_[c];
      n.parent = at;
      n.page = pages[b];
      n.live = true;
      n.tokens.assign(block, block + page_rows_);
      n.children.clear();
      n.used = 0;  // not in by_use_ yet (touch below puts it there)
      children_of(at).push_back(c);
      adopted.push_back(pages[b]);
      ++live_;
    }
    touch(c, now);
    at = c;
  }
  return adopted;
}

void PrefixTree::remove_subtree(int32_t node, std::vector<int32_t>& pages) {
  Node& n = nodes_[node];
  for (int32_t c : n.children) remove_subtree(c, pages);
  pages.push_back(n.page);
  by_use_.erase({n.used, node});
  n.live = false;
  n.children.clear();
  n.tokens.clear();
  free_nodes_.push_back(node);
  --live_;
}

std::vector<int32_t> PrefixTree::evict_one(const std::function<bool(int32_t)>& tree_only) {
  // Oldest first: the first node whose page only the tree holds (the ones skipped are running sequences').
  int32_t victim = -1;
  for (const auto& [used, node] : by_use_)
    if (tree_only(nodes_[node].page)) {
      victim = node;
      break;
    }
  std::vector<int32_t> pages;
  if (victim < 0) return pages;
  std::vector<int32_t>& siblings = children_of(nodes_[victim].parent);
  siblings.erase(std::find(siblings.begin(), siblings.end(), victim));
  remove_subtree(victim, pages);
  return pages;
}

std::vector<int32_t> PrefixTree::clear() {
  std::vector<int32_t> pages;
  for (const Node& n : nodes_)
    if (n.live) pages.push_back(n.page);
  nodes_.clear();
  by_use_.clear();
  free_nodes_.clear();
  roots_.clear();
  live_ = 0;
  return pages;
}

}  // namespace moert
