#!/usr/bin/env bash
# For a session with a lent GPU: the device tool copies the working tree (tracked and untracked-not-ignored
# files) to the GPU machine, at most 64 MiB, and the test data plus the shipped model are ~91 MB. The GPU
# checks (scripts/gpu_check.sh) write their own random checkpoints and need neither.
#   scripts/device_tree.sh slim      untrack tests/data and samples/models (staged removals) and ignore them
#                                    in .git/info/exclude; the files stay on disk
#   scripts/device_tree.sh restore   track them again (unstages the removals, drops the exclude lines)
#   scripts/device_tree.sh status    what would travel, in bytes
# While slim, commit only named paths (git commit -- PATHS): a plain `git commit` would record the removals.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
paths=(tests/data samples/models)
exclude=.git/info/exclude
marker="# moert device_tree.sh slim"

travel_bytes() {
  { git ls-files -z; git ls-files -z --others --exclude-standard; } | xargs -0 -r du -cb 2>/dev/null | tail -1 | cut -f1
}

case "${1:-}" in
  slim)
    if grep -qF "$marker" "$exclude" 2>/dev/null; then
      echo "already slim"
    else
      git rm -r -q --cached -- "${paths[@]}"
      { echo "$marker"; for p in "${paths[@]}"; do echo "/$p/ $marker"; done; } >>"$exclude"
      # git needs the pattern alone on its line: rewrite the lines written above without the trailing marker.
      sed -i "s|^\(/[^ ]*/\) $marker\$|\1|" "$exclude"
      echo "slim: ${paths[*]} untracked and ignored; restore with: scripts/device_tree.sh restore"
    fi
    echo "travels: $(travel_bytes) bytes (limit 67108864, carried build outputs count too)"
    ;;
  restore)
    git reset -q -- "${paths[@]}"
    if [ -f "$exclude" ]; then
      tmp=$(mktemp)
      awk -v m="$marker" -v p="$(printf '/%s/\n' "${paths[@]}")" '
        BEGIN { n = split(p, a, "\n"); for (i = 1; i <= n; i++) drop[a[i]] = 1 }
        $0 == m { skip = 1; next }
        skip && ($0 in drop) { next }
        { skip = 0; print }' "$exclude" >"$tmp"
      cat "$tmp" >"$exclude"
      rm -f "$tmp"
    fi
    echo "restored: ${paths[*]} tracked again"
    git status --short -- "${paths[@]}" | head -5
    ;;
  status)
    echo "travels: $(travel_bytes) bytes (limit 67108864)"
    ;;
  *)
    echo "usage: scripts/device_tree.sh slim|restore|status" >&2
    exit 2
    ;;
esac
