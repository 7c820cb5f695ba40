#!/usr/bin/env bash
# Run every libFuzzer target (fuzz/*_fuzz.c) for a while, under ASan + UBSan, and keep what it
# learns: inputs that add coverage are merged into fuzz/corpus/<target>/ (libFuzzer's -merge=1,
# so the corpus only grows by inputs that reach new code). Crashes, leaks, UB and hangs are
# findings: their inputs land in BUILD/artifacts/<target>/ and the script exits 1.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]        (make fuzz FUZZ_SECONDS=N)
# Environment: FUZZ_BUILD (build dir, default build-fuzz), FUZZ_MERGE=0 (CI: leave the corpus
# alone), FUZZ_TARGETS="tlsx csr" (a subset), JOBS (build parallelism), FUZZ_SEED=N with
# FUZZ_RUNS=M (a fixed seed and at most M inputs per target: the same mutations on every machine,
# so CI fails only on what also fails here; SECONDS then only caps a slow machine's run, which
# stays a prefix of the same sequence).
set -uo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-300}
build=${FUZZ_BUILD:-build-fuzz}
merge=${FUZZ_MERGE:-1}
jobs=${JOBS:-2}
case $seconds in '' | *[!0-9]*) echo "fuzz.sh: seconds must be a whole number" >&2; exit 2 ;; esac
fixed=()
if [ -n "${FUZZ_SEED:-}" ] || [ -n "${FUZZ_RUNS:-}" ]; then
    case "${FUZZ_SEED:-}:${FUZZ_RUNS:-}" in
    *[!0-9:]* | :* | *:) echo "fuzz.sh: FUZZ_SEED and FUZZ_RUNS go together, as whole numbers" >&2; exit 2 ;;
    esac
    fixed=(-seed="$FUZZ_SEED" -runs="$FUZZ_RUNS")
fi

targets=()
for src in fuzz/*_fuzz.c; do
    name=$(basename "$src" _fuzz.c)
    if [ -n "${FUZZ_TARGETS:-}" ] && [[ " $FUZZ_TARGETS " != *" $name "* ]]; then
        continue
    fi
    targets+=("$name")
done
[ ${#targets[@]} -gt 0 ] || { echo "fuzz.sh: no target matches '${FUZZ_TARGETS:-}'" >&2; exit 2; }

CC=clang cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTW_FUZZ=ON -DTW_ASAN=ON \
    -DTW_UBSAN=ON -DTW_WERROR=ON >/dev/null || exit 1
cmake --build "$build" -j "$jobs" --target "${targets[@]/%/_fuzz}" || exit 1

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
summary="$build/fuzz-summary.md"
{
    echo "| target | seconds | execs | execs/s | coverage (cov / ft) | corpus | added | findings |"
    echo "|---|---|---|---|---|---|---|---|"
} >"$summary"
failed=()
for t in "${targets[@]}"; do
    corpus=fuzz/corpus/$t
    scratch=$build/scratch/$t
    artifacts=$build/artifacts/$t
    log=$build/logs/$t.log
    rm -rf "$scratch" "$artifacts" # findings are this run's own
    mkdir -p "$corpus" "$scratch" "$artifacts" "$(dirname "$log")"
    echo "== $t: ${seconds}s (log: $log)"
    # New inputs go to the first directory (scratch); the checked-in corpus seeds the run.
    "$build/fuzz/${t}_fuzz" -max_total_time="$seconds" "${fixed[@]}" -timeout=25 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$artifacts/" "$scratch" "$corpus" >"$log" 2>&1
    rc=$?
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(sed -n 's/.* cov: \([0-9]*\) ft: \([0-9]*\).*/\1 \/ \2/p' <<<"$done_line")
    if [ -z "$cov" ]; then # no DONE line after a crash: the last status line
        cov=$(grep -E ' cov: [0-9]+ ft: ' "$log" | tail -1 |
            sed -n 's/.* cov: \([0-9]*\) ft: \([0-9]*\).*/\1 \/ \2/p')
    fi
    findings=$(find "$artifacts" -type f | wc -l)
    added=0
    if [ "$merge" = 1 ]; then
        before=$(find "$corpus" -type f | wc -l)
        "$build/fuzz/${t}_fuzz" -merge=1 -timeout=25 -rss_limit_mb=2048 "$corpus" "$scratch" \
            >>"$log" 2>&1 || echo "   merge failed, see $log"
        added=$(($(find "$corpus" -type f | wc -l) - before))
    fi
    if [ $rc -ne 0 ] || [ "$findings" -gt 0 ]; then
        failed+=("$t")
        echo "   FINDING (exit $rc): $(ls "$artifacts" | head -3 | tr '\n' ' ')"
        grep -m1 -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error' "$log" |
            sed 's/^/   /'
    fi
    echo "   execs ${execs:-?}, ${rate:-?}/s, cov ${cov:-?}, corpus +$added"
    echo "| $t | $seconds | ${execs:-?} | ${rate:-?} | ${cov:-?} |" \
        "$(find "$corpus" -type f | wc -l) | $added | $findings |" >>"$summary"
done
echo
cat "$summary"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz.sh: findings in: ${failed[*]} (inputs in $build/artifacts/)" >&2
    exit 1
fi
