#!/usr/bin/env bash
# Refresh a git-ignored folder the device tool carries (default data/h-train16) with this
# checkout's tracked files, leaving its data/ (packed pairs, wheels) in place and docs/,
# recipes/, installer/ and ui/ out (the 64 MiB carry limit), and write STAGED_FROM with the
# commit (and "+changes" for uncommitted edits) so the device call's log says what ran there.
# A plain copy that was not refreshed once cost a whole device call (docs/benchmarks.md, issue
# 16, session 8).    Usage, from the checkout's root: bash tools/gpu/stage-tree.sh [FOLDER]
set -eu
dest=${1:-data/h-train16}
git check-ignore -q "$dest" || { echo "$dest is not git-ignored: refusing to write there" >&2; exit 2; }
mkdir -p "$dest"
find "$dest" -mindepth 1 -maxdepth 1 ! -name data -exec rm -rf {} +
git ls-files -z | grep -zv -E '^(docs|recipes|installer|ui)/' | tar --null -cf - -T - | tar -C "$dest" -xf -
rev=$(git rev-parse --short HEAD)
git diff --quiet HEAD -- . ':!data' || rev="$rev+changes"
echo "$rev" > "$dest/STAGED_FROM"
echo "staged $rev into $dest ($(du -sh "$dest" | cut -f1))"
