#!/usr/bin/env bash
# Runs the libFuzzer harnesses built in build/fuzz (make fuzz, make fuzz-check; README
# "Fuzzing").   usage: tests/fuzz/run.sh SECONDS NAME...
# Each harness NAME runs once over every file of tests/fuzz/corpus/NAME (the seeds and the
# regression inputs of crashes found: each must pass), then, when SECONDS > 0, fuzzes a
# scratch copy of that corpus for SECONDS (nothing is written into the repository). A
# crash, leak or timeout fails the run; the input is kept as build/fuzz/artifacts/NAME-*.
# Every harness runs even when one fails; the exit status says whether all passed.
set -u
cd "$(dirname "$0")/../.."
seconds=$1
shift
out=build/fuzz
mkdir -p "$out/artifacts"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
# 10 s per input before it counts as a hang; inputs up to 8 KiB (split messages, startup
# packets with many parameters)
flags=(-timeout=10 -max_len=8192 -rss_limit_mb=2048)
failed=()
scratch=""
trap 'rm -rf "$scratch"' EXIT
for name in "$@"; do
	bin=$out/fuzz_$name
	corpus=tests/fuzz/corpus/$name
	start=$(date +%s)
	if ! "$bin" "${flags[@]}" -artifact_prefix="$out/artifacts/$name-" "$corpus"/* \
		>"$out/$name.corpus.log" 2>&1; then
		echo "== fuzz_$name: FAILED on its corpus ($corpus):"
		grep -E '^Running:' "$out/$name.corpus.log" | tail -1
		grep -E -A25 'ERROR|harness:|SUMMARY' "$out/$name.corpus.log" | head -40
		failed+=("$name (corpus)")
		continue
	fi
	echo "== fuzz_$name: $(ls "$corpus" | wc -l) corpus files pass"
	[ "$seconds" -gt 0 ] || continue
	scratch=$(mktemp -d)
	cp "$corpus"/* "$scratch"/
	dict=()
	[ -f "tests/fuzz/$name.dict" ] && dict=(-dict="tests/fuzz/$name.dict")
	if "$bin" "${flags[@]}" "${dict[@]}" -max_total_time="$seconds" -print_final_stats=1 \
		-artifact_prefix="$out/artifacts/$name-" "$scratch" >"$out/$name.log" 2>&1; then
		stats=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$out/$name.log" | tail -1)
		echo "== fuzz_$name: ${seconds} s, no failure: ${stats#* DONE   }"
	else
		echo "== fuzz_$name: FAILED while fuzzing (log $out/$name.log):"
		grep -E -A40 'ERROR|harness:' "$out/$name.log" | grep -vE '^(#|INFO)' | head -50
		grep -E 'Test unit written' "$out/$name.log"
		failed+=("$name")
	fi
	rm -rf "$scratch"
	echo "   ($(($(date +%s) - start)) s)"
done
if [ ${#failed[@]} -gt 0 ]; then
	echo "fuzz: FAILED: ${failed[*]}"
	exit 1
fi
echo "fuzz: all passed ($*)"
