#!/bin/bash
# The pieces both stand-in checkouts share live once, under common/, and are
# copied (not symlinked) into ../trtllm-v1 and ../trtllm-v2, so that a checkout
# copied with "cp -a" to a temporary folder is complete on its own.
#   sync.sh          copy common/ into both checkouts
#   sync.sh --check  exit 1 and name the files that differ (content or mode)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
checkouts=("$here/../trtllm-v1" "$here/../trtllm-v2")
mode=${1:-copy}
case $mode in
    copy | --check) ;;
    *)
        echo "usage: $0 [--check]" >&2
        exit 2
        ;;
esac

stale=0
cd "$here/common"
while IFS= read -r -d '' rel; do
    rel=${rel#./}
    for checkout in "${checkouts[@]}"; do
        target="$checkout/$rel"
        if [ "$mode" = copy ]; then
            mkdir -p "$(dirname "$target")"
            cp -p "$rel" "$target"
        elif ! cmp -s "$rel" "$target" || [ "$(stat -c %a "$rel")" != "$(stat -c %a "$target" 2> /dev/null)" ]; then
            echo "out of sync: ${target#"$here/../"} (run testdata/standin/sync.sh)"
            stale=1
        fi
    done
done < <(find . -type f -print0 | sort -z)
exit "$stale"
