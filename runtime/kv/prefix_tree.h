// The prefix cache's index: a radix tree of page-aligned token blocks (SGLang's RadixAttention with a page
// as the unit). A node is one full page of tokens under its parent's; its page holds the latent KV of those
// tokens after every earlier block of the chain, so a chain read from the root is a reusable prefix. The tree
// only records page ids and recency; the cache (LatentCache) owns the pages' reference counts and locking.
#pragma once
#include <cstdint>
#include <functional>
#include <set>
#include <utility>
#include <vector>

namespace moert {

class PrefixTree {
 public:
  explicit PrefixTree(int64_t page_rows);

  struct Match {
    std::vector<int32_t> pages;  // the pages holding tokens [0, tokens): full pages, the last maybe partial
    int64_t tokens = 0;
    int64_t full_pages = 0;  // pages.size(), or one less when the last page matched only in part
  };
  // The longest cached prefix of tokens[0, n): whole blocks down the tree, then the longest common prefix
  // with one child of the last matched block (a partial page). Marks the matched nodes as just used.
  Match match(const int32_t* tokens, int64_t n);

  // Records the first `full_pages` blocks of tokens (whose KV lies in pages[0..full_pages)). A block already
  // in the tree keeps its page (the caller's duplicate stays the caller's). Returns the pages the tree now
  // holds that it did not hold before (the caller takes a reference for each).
  std::vector<int32_t> insert(const int32_t* tokens, const std::vector<int32_t>& pages, int64_t full_pages);

  // Removes the least recently used node whose page `tree_only` says nobody but the tree holds, with the
  // nodes under it (their chains start with it). Returns the pages the tree no longer holds (the caller
  // drops a reference for each); empty when nothing can be evicted.
  std::vector<int32_t> evict_one(const std::function<bool(int32_t)>& tree_only);

  // Every page the tree holds, and the tree emptied.
  std::vector<int32_t> clear();
  int64_t nodes() const { return live_; }

 private:
  struct Node {
    int32_t parent = -1;  // -1: under the root
    int32_t page = -1;
    uint64_t used = 0;
    bool live = false;
    std::vector<int32_t> tokens;  // page_rows tokens
    std::vector<int32_t> children;
  };
  std::vector<int32_t>& children_of(int32_t node) { return node < 0 ? roots_ : nodes_[node].children; }
  // The child of `parent` whose block equals tokens[0, page_rows), or -1.
  int32_t find_child(int32_t parent, const int32_t* tokens);
  void remove_subtree(int32_t node, std::vector<int32_t>& pages);
  // Marks a live node used at `now` (its place in by_use_).
  void touch(int32_t node, uint64_t now);

  int64_t page_rows_;
  uint64_t clock_ = 0;
  int64_t live_ = 0;
  std::vector<Node> nodes_;
  std::vector<int32_t> free_nodes_;
  std::vector<int32_t> roots_;
  // Live nodes by (last use, node): eviction walks it oldest first instead of scanning every node.
  std::set<std::pair<uint64_t, int32_t>> by_use_;
};

}  // namespace moert
