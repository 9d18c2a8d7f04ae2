#!/usr/bin/env bash
# Every example answers nonsense flags and bad files with a one-line error and exit code 1.
# Usage: cli_errors.sh <bin dir> <scratch dir>
set -u
bin=$1; tmp=$2
rm -rf "$tmp"; mkdir -p "$tmp"
fails=0; passes=0
expect_error() {  # expect_error <pattern> <command...>
  local pattern=$1; shift
  local out rc
  out=$("$@" 2>&1 >/dev/null); rc=$?
  if [ $rc -ne 1 ] || ! grep -q -- "$pattern" <<<"$out"; then
    echo "FAIL: '$*' -> exit $rc, stderr: $out (wanted exit 1 and /$pattern/)"; fails=$((fails + 1))
  else
    passes=$((passes + 1))
  fi
}
printf 'not a safetensors file' > "$tmp/garbage.safetensors"
head -c 100 /dev/urandom > "$tmp/random.bin"

expect_error "does not exist" "$bin/generate_dataset" --bogus
expect_error "density" "$bin/generate_dataset" --obstacle-density 1.5 --output-dir "$tmp/d"
expect_error "grid" "$bin/generate_dataset" --grid-size 1 --output-dir "$tmp/d"
expect_error "labels\|all-cells" "$bin/generate_dataset" --labels nonsense --output-dir "$tmp/d"
expect_error "encoding" "$bin/generate_dataset" --encoding onehot --output-dir "$tmp/d"
expect_error "cannot open\|No such" "$bin/train" --train-path "$tmp/missing.safetensors"
expect_error "byte" "$bin/train" --train-path "$tmp/garbage.safetensors"
expect_error "label-mode" "$bin/train" --train-path "$tmp/garbage.safetensors" --label-mode maybe
"$bin/generate_dataset" --num-train 3 --num-test 3 --grid-size 4 --encoding seed --output-dir "$tmp/ds" >/dev/null
"$bin/generate_dataset" --num-train 3 --num-test 3 --grid-size 4 --encoding marked --output-dir "$tmp/dm" >/dev/null
expect_error "seed tokens" "$bin/train" --train-path "$tmp/dm/train.safetensors" --val-path "$tmp/ds/test.safetensors" --checkpoint-dir "$tmp/c"
expect_error "not both" "$bin/train" --train-path "$tmp/dm/train.safetensors" --val-path "$tmp/dm/test.safetensors" --checkpoint-dir "$tmp/c" --steps 5 --time-budget 1
expect_error "time budget" "$bin/train" --train-path "$tmp/dm/train.safetensors" --val-path "$tmp/dm/test.safetensors" --checkpoint-dir "$tmp/c" --time-budget -1
expect_error "aux_distance" "$bin/train" --train-path "$tmp/dm/train.safetensors" --val-path "$tmp/dm/test.safetensors" --checkpoint-dir "$tmp/c" --aux-distance -0.5
expect_error "byte" "$bin/benchmark" --checkpoint "$tmp/random.bin"
expect_error "cannot open\|No such" "$bin/benchmark" --checkpoint "$tmp/none.safetensors"
expect_error "byte" "$bin/trm_visual" --checkpoint "$tmp/garbage.safetensors"
expect_error "size" "$bin/astar_visual" --size 0
expect_error "connectivity" "$bin/astar_visual" --connectivity 6
expect_error "density" "$bin/astar_visual" --density -0.5
expect_error "cannot open\|No such" "$bin/astar_visual" --map "$tmp/none.map" --scen "$tmp/none.scen"
printf 'type octile\nheight 2\nwidth 3\nmap\n...\n.X.\n' > "$tmp/bad.map"
expect_error "bad.map:6" "$bin/astar_visual" --map "$tmp/bad.map" --scen "$tmp/none.scen"

echo "$passes passed, $fails failed"
[ $fails -eq 0 ]
