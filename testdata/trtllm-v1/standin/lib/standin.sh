# shellcheck shell=bash
# Helpers shared by the stand-in programs; sourced, never run.

# Knobs arrive through the environment, but a Go test that copies the checkout
# cannot touch the job's environment, so <checkout>/standin.env is read on top
# of it and wins. All assignments are exported so that child processes of the
# sourcing script (pytest under the run script) see the same values.
#
# A run of several tests shares one checkout; <checkout>/standin.d/NAME.env
# is read after standin.env, and wins, in every job whose Slurm job name
# ends with NAME (disagg-runner names a test's job after the run and the
# test), so that each test of the list can behave differently.
standin_load_knobs() {
    local perJob name
    standin_source_knobs "$1/standin.env"
    for perJob in "$1"/standin.d/*.env; do
        name=$(basename "$perJob" .env)
        case ${SLURM_JOB_NAME:-} in
            *"$name") standin_source_knobs "$perJob" ;;
        esac
    done
}

# Source a knob file, when there is one, exporting what it assigns.
standin_source_knobs() {
    if [ -f "$1" ]; then
        set -a
        # shellcheck disable=SC1090
        . "$1"
        set +a
    fi
}

# Node names come from slurmd so that four slurmd daemons on one machine still
# report four different "hosts".
standin_host() {
    if [ -n "${SLURMD_NODENAME:-}" ]; then
        echo "$SLURMD_NODENAME"
    else
        hostname -s
    fi
}

# Readers poll for these files; writing under a temporary name and renaming
# keeps them from ever seeing a half-written one. The temporary name starts
# with a dot so that no reader's glob ("req/GEN_0.*", "ranks/GEN_0.rank*")
# takes it for a file of its own: a server once answered, and removed, a
# request still being written, and the benchmark waited for it in vain.
standin_publish() {
    local target=$1 content=$2
    local tmp
    tmp="$(dirname "$target")/.$(basename "$target").tmp.$$"
    printf '%s\n' "$content" > "$tmp"
    mv -f "$tmp" "$target"
}

# Echo a knob that must be a non-negative integer, or fail loudly: a typo in a
# test's standin.env should not silently turn into the happy path.
standin_int_knob() {
    local name=$1 default=$2 value
    value=${!name:-$default}
    case $value in
        '' | *[!0-9]*)
            echo "standin: knob $name must be a non-negative integer, got '$value'" >&2
            return 4
            ;;
    esac
    echo "$value"
}

# Same, but durations may have a fraction (sleep takes 0.5).
standin_seconds_knob() {
    local name=$1 default=$2 value
    value=${!name:-$default}
    if ! [[ $value =~ ^[0-9]+(\.[0-9]+)?$ ]]; then
        echo "standin: knob $name must be a number of seconds, got '$value'" >&2
        return 4
    fi
    echo "$value"
}
