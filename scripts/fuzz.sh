#!/bin/sh
# Runs every native Go fuzz target of the module (func FuzzXxx in a
# _test.go file), one after the other, each for FUZZTIME (default 10m).
# The targets are found with `go test -list`, in the packages whose tests
# define one. Every target runs even when one fails; the exit status says
# whether any did. A crash is written by go test to the package's
# testdata/fuzz/FuzzXxx/ (commit it with the fix).
#
#   FUZZTIME=3m scripts/fuzz.sh            every target, 3 minutes each
#   FUZZTIME=3s scripts/fuzz.sh ./wire     the targets of one package
#
# FUZZMINIMIZETIME bounds the minimisation of each new input (default
# 100x, a hundred runs): with go test's 60 s, a target whose coverage
# varies from run to run (map order, parser caches) spends its time
# minimising inputs it then drops. TAGS are build tags for go test.
set -eu

GO=${GO:-go}
FUZZTIME=${FUZZTIME:-10m}
FUZZMINIMIZETIME=${FUZZMINIMIZETIME:-100x}
TAGS=${TAGS:-}

cd "$(dirname "$0")/.."
if [ $# -eq 0 ]; then
	# Only packages whose tests define a fuzz target: listing the others
	# would build every test binary of the module for nothing.
	set -- $(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u)
fi

failed=""
count=0
for pkg in "$@"; do
	if ! list=$($GO test ${TAGS:+-tags "$TAGS"} -list '^Fuzz' "$pkg"); then
		echo "$list"
		failed="$failed $pkg"
		continue
	fi
	targets=$(echo "$list" | grep '^Fuzz' || true)
	for target in $targets; do
		count=$((count + 1))
		echo "=== fuzz $pkg $target ($FUZZTIME)"
		if ! $GO test ${TAGS:+-tags "$TAGS"} -run '^$' -fuzz "^$target\$" -fuzztime "$FUZZTIME" \
			-fuzzminimizetime "$FUZZMINIMIZETIME" "$pkg"; then
			failed="$failed $pkg:$target"
		fi
	done
done
if [ "$count" -eq 0 ]; then
	echo "fuzz: no targets found" >&2
	exit 1
fi
if [ -n "$failed" ]; then
	echo "fuzz: failed:$failed" >&2
	exit 1
fi
echo "fuzz: $count targets passed"
