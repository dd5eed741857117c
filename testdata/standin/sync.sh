#!/bin/bash
# The pieces the stand-in checkouts share live once here and are copied (not
# symlinked) into them, so that a checkout copied with "cp -a" to a temporary
# folder is complete on its own:
#   common/       into ../trtllm-v1, ../trtllm-v2 and ../trtllm-v3
#   perf-sanity/  into ../trtllm-v2 and ../trtllm-v3 (the precheck pieces)
#   sync.sh          copy them into the checkouts
#   sync.sh --check  exit 1 and name the files that differ (content or mode)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mode=${1:-copy}
case $mode in
    copy | --check) ;;
    *)
        echo "usage: $0 [--check]" >&2
        exit 2
        ;;
esac

stale=0
# sync_tree SOURCE CHECKOUT...: every file under SOURCE into each checkout.
sync_tree() {
    local source=$here/$1 rel target checkout
    shift
    while IFS= read -r -d '' rel; do
        rel=${rel#./}
        for checkout in "$@"; do
            target="$here/../$checkout/$rel"
            if [ "$mode" = copy ]; then
                mkdir -p "$(dirname "$target")"
                cp -p "$source/$rel" "$target"
            elif ! cmp -s "$source/$rel" "$target" || [ "$(stat -c %a "$source/$rel")" != "$(stat -c %a "$target" 2> /dev/null)" ]; then
                echo "out of sync: $checkout/$rel (run testdata/standin/sync.sh)"
                stale=1
            fi
        done
    done < <(cd "$source" && find . -type f -print0 | sort -z)
}

sync_tree common trtllm-v1 trtllm-v2 trtllm-v3
sync_tree perf-sanity trtllm-v2 trtllm-v3
exit "$stale"
