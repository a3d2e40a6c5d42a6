#!/usr/bin/env bash
# The GPU check, shaped for short GPU loans (one H100 or H200, torch 2.11+cu130 in python3, nvcc 13.0, cmake,
# ninja, 16 cores; no apt, no network; about 15 minutes of device time in all, at most 10 minutes a command,
# 64 MiB that travel, 8 files of 16 MiB that come back from $OUT).
#
# Stages run in priority order, each under a time cap and inside the call's budget (--budget); each one
# appends its result to $OUT as soon as it ends, so a call cut off still returns what it measured:
#   $OUT/stages.jsonl        one row per stage: stage, priority, status, rc, seconds, cap_s, started, reason, summary
#   $OUT/bench.jsonl         the rows of every `gqe bench` stage, tagged with the stage
#   $OUT/check.log           every command's output
#   $OUT/train-metrics.jsonl the CLI run's training metrics
#   $OUT/summary.txt         the table of this call and the flags that resume it on a bare machine
# Priorities: 0 build (on the machine: its torch and nvcc cannot be carried), 1 the CLI end to end on cuda
# (tokenizer, train, generate, generate --prompts, eval, export), 2 the CUDA tests and the 2-rank NCCL run,
# 3 the paper-shape prefill sweep at core and layer level (4k, 16k, 64k, then 2k, 256k, 1M), 4 a training step
# at 4k and 16k, 5 decode at batch 1 and 32 and the Python package on the GPU, 6 block level. `--list` prints them.
#
# Usage:
#   here, once:          bash scripts/gpu-check.sh --prepare      (fills .device/, which git ignores)
#   on the device:       bash scripts/gpu-check.sh                (carry .device; timeout_s 540)
#   a second call:       the same command resumes from the state in build-gpu/check/ on a warm machine;
#                        on a bare one add `--skip A,B,...` or `--from STAGE` (summary.txt prints them)
#   here or in CI:       bash scripts/gpu-check.sh --dry-run      (every stage that can, on the CPU, tiny sizes)
# Exit status: 0 every stage passed or was skipped for a recorded reason; 1 a stage failed or hit its cap;
# 2 usage or set-up error; 3 nothing failed but stages are left for another call (out of budget);
# 77 (dry run) no gqe binary or no python3 here.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

die() { echo "gpu-check: $*" >&2; exit 2; }

# name priority cap_seconds description. The order is the order of execution.
STAGE_TABLE="
build           0 420 gqe and test_cuda built against this machine's torch (ninja, every core)
tokenizer       1  60 a SentencePiece tokenizer trains (the carried libsentencepiece loads)
train           1 150 gqe train --device cuda, 50 steps of the tiny GQE model, a sample at its end
generate        1  60 gqe generate, one prompt
generate_batch  1  60 gqe generate --prompts, a batch of four
eval            1  90 gqe eval on a tiny ARC-Easy and PIQA written here
export          1  60 gqe export --format hf
cuda_tests      2 240 test_cuda: the CUDA path against the reference, every variant
multi_rank      2 120 two ranks over NCCL (needs two GPUs)
prefill_4k      3  60 bench: paper shape, core and layer, n 4096
prefill_16k     3  60 bench: core and layer, n 16384
prefill_64k     3  90 bench: core and layer, n 65536
prefill_2k      3  45 bench: core and layer, n 2048
prefill_256k    3 120 bench: core and layer, n 262144
prefill_1m      3 240 bench: core and layer, n 1048576
train_4k        4  60 bench: training step of the 2-layer LM, n 4096
train_16k       4  90 bench: training step, n 16384
decode_b1       5  60 bench: decode, batch 1, contexts 4096 and 65536
decode_b32      5  90 bench: decode, batch 32 (ragged), contexts 4096 and 65536
python_ops      5 300 the Python package's ops library with the CUDA path, its tests on the GPU (pytest carried)
block           6 120 bench: block level, n 4096, 16384, 65536
"
NAMES=(); declare -A PRIO CAP DESC
while read -r n p c d; do
  [ -n "$n" ] || continue
  NAMES+=("$n"); PRIO[$n]=$p; CAP[$n]=$c; DESC[$n]=$d
done <<<"$STAGE_TABLE"
is_stage() { [ -n "${PRIO[$1]:-}" ]; }

usage() {
  sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
  cat <<'EOF'
Options:
  --prepare          copy the dependencies the device machine lacks into .device/ (run here, then carry .device)
  --dry-run          every stage that can run on the CPU: device cpu, tiny lengths, a few steps, no build
  --build-dir DIR    where gqe is built (device: build-gpu) or found (dry run: build); GQE_BIN=PATH names the
                     binary itself (the dry run then takes test_cuda from beside it)
  --work DIR         scratch and state folder (device: BUILD_DIR/check; dry run: $GQE_TEST_TMP/gpu-check-dry)
  --skip A,B         stages not to run            --from STAGE   skip the stages before STAGE (not build)
  --only A,B         run these stages alone        --fresh        forget what earlier calls did
  --budget SECONDS   stop starting stages when this is spent (device 500, dry run 900)
  --bench-args "..." extra flags for every `gqe bench` call
  --list             print the stages and exit
EOF
}

MODE=device BUILD_DIR="" WORK="" SKIP="" FROM="" ONLY="" FRESH=0 BUDGET="" BENCH_EXTRA=""
while [ $# -gt 0 ]; do
  case "$1" in
    --prepare) MODE=prepare ;;
    --dry-run) MODE=dry ;;
    --build-dir) [ $# -ge 2 ] || die "--build-dir needs a folder"; BUILD_DIR=$2; shift ;;
    --work) [ $# -ge 2 ] || die "--work needs a folder"; WORK=$2; shift ;;
    --skip) [ $# -ge 2 ] || die "--skip needs a list of stages"; SKIP=$2; shift ;;
    --from) [ $# -ge 2 ] || die "--from needs a stage"; FROM=$2; shift ;;
    --only) [ $# -ge 2 ] || die "--only needs a list of stages"; ONLY=$2; shift ;;
    --fresh) FRESH=1 ;;
    --budget) [ $# -ge 2 ] && [[ $2 =~ ^[0-9]+$ ]] || die "--budget needs a number of seconds"; BUDGET=$2; shift ;;
    --bench-args) [ $# -ge 2 ] || die "--bench-args needs a string"; BENCH_EXTRA=$2; shift ;;
    --list) for n in "${NAMES[@]}"; do printf '%-15s %s %4ss  %s\n' "$n" "${PRIO[$n]}" "${CAP[$n]}" "${DESC[$n]}"; done; exit 0 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
  shift
done
for n in ${SKIP//,/ } ${ONLY//,/ } $FROM; do
  is_stage "$n" || die "unknown stage '$n' (stages: ${NAMES[*]})"
done

if [ "$MODE" = prepare ]; then
  set -e
  arch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
  rm -rf .device/deps && mkdir -p .device/deps/include .device/deps/lib
  cp -r /usr/include/nlohmann .device/deps/include/
  cp -r /usr/src/googletest .device/deps/googletest
  # OpenSSL's headers (with the architecture's configuration headers) and static libcrypto: the GPU machine
  # has libcrypto.so.3 for its Python but no headers.
  cp -r /usr/include/openssl .device/deps/include/
  cp /usr/include/"$arch"/openssl/*.h .device/deps/include/openssl/
  cp /usr/lib/"$arch"/libcrypto.a .device/deps/lib/
  # PCRE2 (byte-level BPE pre-tokenizers): the header and the shared library, which needs only libc.
  cp /usr/include/pcre2.h .device/deps/include/
  cp -L /usr/lib/"$arch"/libpcre2-8.so .device/deps/lib/libpcre2-8.so
  cp -L /usr/lib/"$arch"/libpcre2-8.so.0 .device/deps/lib/libpcre2-8.so.0
  # SentencePiece (the gqe_spm shim): both libraries need only libstdc++ and libc (protobuf-lite is bundled).
  # Plain copies, not links: the build links the .so name, the loader then asks for the .so.0 soname.
  spm_lib=$(ldconfig -p | awk '/libsentencepiece\.so\.0 .*x86-64/ && !f {print $NF; f = 1}')  # no early exit: SIGPIPE under pipefail
  [ -n "$spm_lib" ] || spm_lib=/usr/lib/$arch/libsentencepiece.so.0
  spm_dir=$(dirname "$spm_lib")
  for l in libsentencepiece libsentencepiece_train; do
    [ -e "$spm_dir/$l.so.0" ] || { echo "gpu-check: $spm_dir/$l.so.0 not found: install libsentencepiece-dev" >&2; exit 2; }
    cp -L "$spm_dir/$l.so.0" .device/deps/lib/"$l".so.0
    cp -L "$spm_dir/$l.so.0" .device/deps/lib/"$l".so
  done
  cp /usr/include/sentencepiece_processor.h /usr/include/sentencepiece_trainer.h .device/deps/include/
  # pytest and what it imports, as wheels (pure Python): the device machine has torch but no pytest and no
  # network. The versions of scripts/python-requirements.txt's pytest, from the project's venv.
  rm -rf .device/wheels && mkdir -p .device/wheels
  pip_py=python3; [ -x .venv-torch/bin/python ] && pip_py=.venv-torch/bin/python
  "$pip_py" -m pip download -q --only-binary=:all: -d .device/wheels \
    "$(grep -E '^pytest==' scripts/python-requirements.txt | cut -d' ' -f1)" ||
    { echo "gpu-check: could not download pytest's wheels into .device/wheels" >&2; exit 2; }
  size_kb=$(du -sk .device | cut -f1)
  du -sh .device
  # What travels is the tree plus .device: keep .device to a fraction of the 64 MiB.
  [ "$size_kb" -lt $((40 * 1024)) ] || { echo "gpu-check: .device is ${size_kb} KiB, too close to the 64 MiB limit" >&2; exit 2; }
  tree_kb=$(git ls-files -co --exclude-standard -z | du -ck --files0-from=- 2>/dev/null | tail -1 | cut -f1)
  echo "what travels: the tree ${tree_kb:-?} KiB + .device ${size_kb} KiB (the limit is 65536 KiB)"
  [ $(( ${tree_kb:-0} + size_kb )) -lt $((60 * 1024)) ] || { echo "gpu-check: the tree and .device are too close to 64 MiB" >&2; exit 2; }
  echo "prepared .device/: carry it in the device call (carry [\".device\"])"
  exit 0
fi

# ---- set-up -----------------------------------------------------------------------------------------------
command -v python3 >/dev/null || { [ "$MODE" = dry ] && { echo "gpu-check: no python3: dry run skipped"; exit 77; }; die "python3 not found"; }
command -v timeout >/dev/null || die "timeout (coreutils) not found"

if [ "$MODE" = dry ]; then
  DEV=cpu
  if [ -n "${GQE_BIN:-}" ]; then BIN=$GQE_BIN; else BIN=${BUILD_DIR:-build}/gqe; fi
  [ -x "$BIN" ] || { echo "gpu-check: no gqe binary at $BIN (set GQE_BIN or --build-dir): dry run skipped"; exit 77; }
  BUILD_DIR=$(dirname "$BIN")
  WORK=${WORK:-${GQE_TEST_TMP:-${TMPDIR:-/tmp}}/gpu-check-dry}
  # A dry run starts from nothing every time: it checks the script, it resumes nothing. Only a folder that
  # an earlier dry run made (its marker inside) is wiped, never one named by mistake.
  if [ -e "$WORK" ]; then
    [ -e "$WORK/.gpu-check-dry" ] || [ -z "$(ls -A "$WORK")" ] || die "--work $WORK is not empty and not a dry run's folder"
    rm -rf "$WORK"
  fi
  mkdir -p "$WORK" && : >"$WORK/.gpu-check-dry"
  FRESH=1
  BUDGET=${BUDGET:-900}
else
  DEV=cuda
  BUILD_DIR=${BUILD_DIR:-build-gpu}
  BIN=${GQE_BIN:-$BUILD_DIR/gqe}
  [ -n "${GQE_BIN:-}" ] && BUILD_DIR=$(dirname "$GQE_BIN")   # test_cuda beside it
  # The state lives beside the build it describes: both survive on a warm machine, both are gone on a bare one.
  WORK=${WORK:-$BUILD_DIR/check}
  BUDGET=${BUDGET:-500}
  [ -d .device/deps ] || die ".device/deps missing: run 'bash scripts/gpu-check.sh --prepare' here and carry .device"
  command -v nvidia-smi >/dev/null || die "no nvidia-smi: this machine has no NVIDIA GPU (use --dry-run on a CPU)"
fi
mkdir -p "$WORK/logs" "$WORK/bench" || die "cannot create $WORK"
WORK=$(cd "$WORK" && pwd)
OUT=${OUT:-$WORK/out}
mkdir -p "$OUT" || die "cannot create OUT=$OUT"
OUT=$(cd "$OUT" && pwd)
STATE=$WORK/state.jsonl
[ "$FRESH" = 1 ] && rm -f "$STATE"
# The carried SentencePiece, PCRE2: the build's RUNPATH names them too; this covers a binary built elsewhere.
[ "$MODE" = device ] && export LD_LIBRARY_PATH="$ROOT/.device/deps/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PATH="$PATH:/usr/local/cuda/bin"
CALL=$(date -u +%Y%m%dT%H%M%SZ)-$$
T0=$(date +%s)
DEADLINE=$((T0 + BUDGET))

# JSON goes through python3: the one tool both machines have that writes it correctly.
read -r -d '' PYHELP <<'PY'
import json, math, os, re, sys

def rows(path):
    out = []
    if os.path.exists(path):
        for line in open(path, encoding="utf-8", errors="replace"):
            line = line.strip()
            if line:
                out.append(json.loads(line))
    return out

def append(path, row):
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")

cmd, args = sys.argv[1], sys.argv[2:]
if cmd == "row":  # row FILE key=string key:=json ...
    row = {}
    for a in args[1:]:
        k, v = a.split("=", 1)
        if k.endswith(":"):
            row[k[:-1]] = json.loads(v) if v else None
        else:
            row[k] = v
    append(args[0], row)
elif cmd == "train":  # train METRICS: loss first/last; exit 1 when a loss is not finite or none was logged
    losses = [r["loss"] for r in rows(args[0]) if isinstance(r.get("loss"), (int, float))]
    val = [r["val_loss"] for r in rows(args[0]) if isinstance(r.get("val_loss"), (int, float))]
    s = {"records": len(losses)}
    if losses:
        s.update(loss_first=round(losses[0], 4), loss_last=round(losses[-1], 4), loss_fell=losses[-1] < losses[0])
    if val:
        s["val_loss_last"] = round(val[-1], 4)
    ok = bool(losses) and all(math.isfinite(x) for x in losses + val)
    print(json.dumps(s))
    sys.exit(0 if ok else 1)
elif cmd == "lines":  # lines FILE N: the last N lines as a JSON string list
    text = open(args[0], encoding="utf-8", errors="replace").read().splitlines() if os.path.exists(args[0]) else []
    print(json.dumps([l[:300] for l in text[-int(args[1]):]]))
elif cmd == "generate_batch":  # generate_batch OUTPUT PROMPTS: one JSON object per prompt, in order
    got = [json.loads(l) for l in open(args[0]) if l.strip().startswith("{")]
    want = [l.rstrip("\n") for l in open(args[1]) if l.strip()]
    s = {"prompts": len(want), "outputs": len(got), "first": (got[0].get("completion", "")[:120] if got else "")}
    print(json.dumps(s))
    sys.exit(0 if len(got) == len(want) and [g.get("prompt") for g in got] == want else 1)
elif cmd == "eval":  # eval RESULTS_JSON
    j = json.load(open(args[0]))
    print(json.dumps({t: {k: v for k, v in r.items() if k in ("acc,none", "acc_norm,none")}
                      for t, r in j.get("results", {}).items()}))
elif cmd == "gtest":  # gtest LOG: counts and failed tests
    text = open(args[0], encoding="utf-8", errors="replace").read()
    s = {}
    for key, pat in (("passed", r"\[  PASSED  \] (\d+) test"), ("failed", r"\[  FAILED  \] (\d+) test"),
                     ("skipped", r"\[  SKIPPED \] (\d+) test")):
        m = re.search(pat, text)
        if m:
            s[key] = int(m.group(1))
    s["failed_tests"] = sorted(set(re.findall(r"^\[  FAILED  \] (\S+\.\S+)", text, re.M)))[:30]
    print(json.dumps(s))
elif cmd == "bench":  # bench JSON BENCH_JSONL STAGE CALL DEVICE LOG: rows to JSON lines, a summary
    src, dst, stage, call, device, log = args
    text = open(log, encoding="utf-8", errors="replace").read() if os.path.exists(log) else ""
    # The SDPA backend, when this gqe prints it (its wording is not fixed: any line naming a backend).
    backend = []
    for l in text.splitlines():
        if not l.startswith("+ ") and re.search(r"backend|sdpa", l, re.I) and l.strip() not in backend:
            backend.append(l.strip()[:200])
    s = {"rows": 0, "backend_lines": backend[:6]}
    if not os.path.exists(src):
        s["note"] = "no bench JSON (the call did not finish): the rows printed so far are in check.log"
        print(json.dumps(s))
        sys.exit(0)
    j = json.load(open(src))
    top = {k: v for k, v in j.items() if "backend" in k.lower() or k in ("device", "implementation")}
    ratios, backends = {}, set()
    for r in j.get("rows", []):
        backends.update(str(v) for k, v in r.items() if "backend" in k.lower() and v not in ("", None))
        row = {"stage": stage, "call": call, "device_name": device, **top, **r}
        append(dst, row)
        key = "%s/%s@%s" % (r.get("section"), r.get("level"), r.get("n"))
        ratios[key] = round(r.get("ratio", 0), 3)
    s["rows"] = len(j.get("rows", []))
    s["ratio_gqa_over_gqe"] = ratios
    s["backends"] = sorted(backends)
    s["runtime"] = j.get("runtime", "")
    print(json.dumps(s))
elif cmd == "report":  # report STAGES_JSONL CALL: the table of this call
    for r in rows(args[0]):
        if r.get("call") != args[1] or r.get("stage") == "machine":
            continue
        rc = "" if r.get("rc") is None else r["rc"]
        extra = r.get("reason") or ""
        summ = r.get("summary")
        if summ and not extra:
            extra = json.dumps(summ)[:160]
        print("%-15s p%s %-8s rc=%-4s %5ss  %s" % (r["stage"], r.get("priority", ""), r["status"], rc,
                                                  r.get("seconds", ""), extra))
elif cmd == "finished":  # finished STATE: the stages an earlier call finished (passed, failed or skipped for good)
    print(" ".join(sorted({r["stage"] for r in rows(args[0])
                           if r.get("status") in ("ok", "failed", "timeout", "skipped")})))
elif cmd == "check":  # check STAGES_JSONL BENCH_JSONL CALL STAGE...: the dry run's own test
    stages, bench, call, names = rows(args[0]), rows(args[1]), args[2], args[3:]
    bad = []
    mine = {r["stage"]: r for r in stages if r.get("call") == call}
    if "machine" not in mine:
        bad.append("no machine row")
    for n in names:
        r = mine.get(n)
        if r is None:
            bad.append("%s: no row in stages.jsonl" % n)
        elif r["status"] == "skipped":
            if not r.get("reason"):
                bad.append("%s: skipped without a reason" % n)
        elif r["status"] != "ok" or r.get("rc") != 0:
            bad.append("%s: status %s rc %s" % (n, r["status"], r.get("rc")))
        elif n.startswith(("prefill_", "train_", "decode_", "block")):
            if not any(b.get("stage") == n and b.get("call") == call for b in bench):
                bad.append("%s: ok but no row in bench.jsonl" % n)
    for b in bench:
        for k in ("stage", "section", "level", "n", "gqa_ms", "gqe_ms", "ratio"):
            if k not in b:
                bad.append("bench.jsonl row without %s: %s" % (k, json.dumps(b)[:200]))
                break
    for m in bad:
        print("dry run check: " + m)
    print("dry run check: %s (%d stages, %d bench rows)" % ("FAILED" if bad else "passed", len(names), len(bench)))
    sys.exit(1 if bad else 0)
else:
    sys.exit("gpu-check: unknown helper " + cmd)
PY
py() { python3 -c "$PYHELP" "$@"; }

STAGE_LOG=/dev/null STAGE_DEADLINE=$DEADLINE
# tcmd CMD...: runs CMD within the stage's deadline, its output into the stage's log and check.log.
tcmd() {
  local left=$((STAGE_DEADLINE - $(date +%s)))
  [ "$left" -ge 1 ] || { echo "gpu-check: no time left for: $*" >>"$STAGE_LOG"; return 124; }
  echo "+ $*" | tee -a "$STAGE_LOG" >>"$OUT/check.log"
  # -k: a process that ignores SIGTERM (a hung NCCL rank) is killed 10 s later.
  timeout -k 10 "$left" "$@" 2>&1 | tee -a "$STAGE_LOG" >>"$OUT/check.log"
  local rc=${PIPESTATUS[0]}
  [ "$rc" -eq 137 ] && rc=124
  return "$rc"
}

# ---- the machine ------------------------------------------------------------------------------------------
NGPU=0 GPU_NAME=cpu
if [ "$DEV" = cuda ]; then
  NGPU=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ')
  [ "$NGPU" -gt 0 ] || NGPU=$(python3 -c 'import torch; print(torch.cuda.device_count())' 2>/dev/null || echo 0)
  [ "$NGPU" -gt 0 ] || die "no CUDA device found (nvidia-smi -L lists none)"
  GPU_NAME=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
  smi=$(nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv,noheader 2>&1 | head -4)
  torch_v=$(python3 -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda)' 2>&1 | tail -1)
  nvcc_v=$(nvcc --version 2>/dev/null | grep -o 'release [0-9.]*' | head -1)
  py row "$OUT/stages.jsonl" stage=machine call="$CALL" mode="$MODE" gpus:="$NGPU" gpu="$GPU_NAME" nvidia_smi="$smi" \
    torch="$torch_v" nvcc="$nvcc_v" cores:="$(nproc)" started="$(date -u +%FT%TZ)" commit="$(git rev-parse --short HEAD 2>/dev/null)"
else
  py row "$OUT/stages.jsonl" stage=machine call="$CALL" mode="$MODE" gpus:=0 gpu=none \
    cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')" cores:="$(nproc)" \
    started="$(date -u +%FT%TZ)" binary="$BIN" commit="$(git rev-parse --short HEAD 2>/dev/null)"
fi
echo "gpu-check: $MODE run $CALL on $GPU_NAME ($NGPU GPU(s)), budget ${BUDGET}s, work $WORK, out $OUT"

# ---- sizes: the device's, or the dry run's tiny ones ------------------------------------------------------
if [ "$MODE" = dry ]; then
  STEPS=3 TBATCH=4 TSEQ=64 SAMPLE=16 GEN_TOKENS=8 THREADS=(--threads 2)
  # The small shape: the dry run checks the flow, and the paper shape's training step takes seconds here.
  BENCH_COMMON=(--device cpu --shapes small --repeats 1 --seconds-per-point 1 --threads 2 --no-plot)
  # Each GPU length stands for a CPU one, small enough for two shared cores.
  len() { case $1 in 2048) echo 64 ;; 4096) echo 128 ;; 16384) echo 256 ;; 65536) echo 512 ;;
                     262144) echo 768 ;; 1048576) echo 1024 ;; *) echo 128 ;; esac; }
else
  STEPS=50 TBATCH=16 TSEQ=128 SAMPLE=64 GEN_TOKENS=64 THREADS=()
  BENCH_COMMON=(--device cuda --shapes paper --repeats 10 --seconds-per-point 5 --no-plot)
  len() { echo "$1"; }
fi
# shellcheck disable=SC2206  # --bench-args is a list of flags, split on spaces on purpose
BENCH_COMMON+=($BENCH_EXTRA)
# Does this build's command take --device? (generate and eval gain it with the CUDA decode fixes.)
takes_device() { "$BIN" "$1" --help 2>/dev/null | grep -q -- '--device'; }

RUN=$WORK/run
TEXT=$WORK/train.txt

# ---- the stages: each returns its exit status; SKIP_REASON set means skipped; SUMMARY (JSON) is recorded ----
# pre_skip STAGE: the reason a stage is skipped for good, known before it starts (and before the budget asks).
pre_skip() {
  case $1 in
    build) if [ "$MODE" = dry ]; then echo "dry run: uses the existing build at $BUILD_DIR"
           elif [ -n "${GQE_BIN:-}" ]; then echo "GQE_BIN=$GQE_BIN given: not built here"; fi ;;
    # NCCL refuses two ranks on one GPU (a duplicate device): a one-GPU machine cannot run this at all.
    multi_rank) [ "$MODE" = device ] && [ "$NGPU" -lt 2 ] && echo "needs 2 GPUs, this machine has $NGPU" ;;
  esac
}

stage_build() {
  local prefix gen=(-G Ninja) t1
  prefix=$(python3 -c 'import torch.utils; print(torch.utils.cmake_prefix_path)' 2>>"$STAGE_LOG") || { echo "python3 has no torch" >>"$STAGE_LOG"; return 1; }
  command -v ninja >/dev/null || gen=()
  [ -f "$BUILD_DIR/CMakeCache.txt" ] && gen=()
  t1=$(date +%s)
  tcmd cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" -DGQE_CUDA=ON \
    -DTORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}" -DGQE_DEPS_DIR="$ROOT/.device/deps" "${gen[@]}" || return $?
  local t2; t2=$(date +%s)
  # Only what the stages run: the CPU suite is CI's, and its test binaries would double the build.
  tcmd cmake --build "$BUILD_DIR" --parallel "$(nproc)" --target gqe_cli test_cuda || return $?
  SUMMARY=$(py row /dev/stdout configure_s:=$((t2 - t1)) build_s:=$(( $(date +%s) - t2 )) \
    config:="$(grep -E '^-- gqe:' "$STAGE_LOG" | py lines /dev/stdin 6)")
}

need_bin() { [ -x "$BIN" ] || { echo "no gqe binary at $BIN" >>"$STAGE_LOG"; return 1; }; }

stage_tokenizer() {
  need_bin || return 1
  [ -s "$TEXT" ] || cat docs/*.md README.md >"$TEXT"
  tcmd "$BIN" tokenizer train --input "$TEXT" --out "$WORK/spm/tok" --vocab-size 400 --threads 2 || return $?
  SUMMARY=$(py row /dev/stdout model_bytes:="$(stat -c %s "$WORK/spm/tok.model" 2>/dev/null || echo 0)")
}

stage_train() {
  need_bin || return 1
  # The repository's own docs: text that travels with the tree, so no corpus has to be carried.
  [ -s "$TEXT" ] || cat docs/*.md README.md >"$TEXT"
  rm -rf "$RUN"
  tcmd "$BIN" train --config configs/tiny-gqe.json --data "$TEXT" --out "$RUN" --steps "$STEPS" --batch "$TBATCH" \
    --seq "$TSEQ" --device "$DEV" --eval-every 25 --eval-batches 2 --log-every 5 --sample-tokens "$SAMPLE" \
    --sample-prompt "The model" "${THREADS[@]}" || return $?
  cp "$RUN/metrics.jsonl" "$OUT/train-metrics.jsonl" 2>/dev/null
  SUMMARY=$(py train "$RUN/metrics.jsonl") || return 1   # no loss logged, or one not finite
  # 50 steps on the GPU must lower the loss: a path that runs but does not learn is a failure. (The dry run's
  # 3 steps only report it.)
  if [ "$MODE" = device ] && [[ $SUMMARY != *'"loss_fell": true'* ]]; then
    echo "gpu-check: the training loss did not fall: $SUMMARY" >>"$STAGE_LOG"; return 1
  fi
}

need_run() {
  need_bin || return 1
  # Not a skip for good: once train passes (a later call), this stage runs.
  [ -f "$RUN/model.safetensors" ] || { SKIP_REASON="no trained model at $RUN (the train stage did not pass on this machine)"; SKIP_KEEP=0; return 0; }
}

# dev_flag COMMAND: DEVFLAG=(--device DEV) when COMMAND takes it; DEVNOTE says where it ran.
dev_flag() {
  if takes_device "$1"; then DEVFLAG=(--device "$DEV"); DEVNOTE=$DEV
  else DEVFLAG=(); DEVNOTE="cpu (this gqe $1 has no --device flag)"; fi
}

stage_generate() {
  need_run || return $?; [ -n "${SKIP_REASON:-}" ] && return 0
  dev_flag generate
  tcmd "$BIN" generate --checkpoint "$RUN" --prompt "The model" --max-new-tokens "$GEN_TOKENS" --seed 1 \
    "${DEVFLAG[@]}" "${THREADS[@]}" || return $?
  SUMMARY=$(py row /dev/stdout device="$DEVNOTE" tail:="$(grep -v '^+ ' "$STAGE_LOG" | py lines /dev/stdin 2)")
}

stage_generate_batch() {
  need_run || return $?; [ -n "${SKIP_REASON:-}" ] && return 0
  dev_flag generate
  printf '%s\n' "The model" "Attention is" "A GPU" "In the beginning" >"$WORK/prompts.txt"
  tcmd "$BIN" generate --checkpoint "$RUN" --prompts "$WORK/prompts.txt" --max-new-tokens "$GEN_TOKENS" --seed 1 \
    "${DEVFLAG[@]}" "${THREADS[@]}" || return $?
  local s rc
  s=$(grep '^{' "$STAGE_LOG" | py generate_batch /dev/stdin "$WORK/prompts.txt"); rc=$?
  SUMMARY=$(py row /dev/stdout device="$DEVNOTE" check:="$s")
  return $rc
}

write_eval_data() {  # a tiny ARC-Easy (the Hugging Face layout) and PIQA (with its labels file), --data-dir layout
  local d=$WORK/evaldata
  rm -rf "$d" && mkdir -p "$d/piqa"
  cat >"$d/ARC-Easy-Test.jsonl" <<'EOF'
{"id": "t1", "question": "Which of these gives off its own light?", "choices": {"text": ["the Sun", "the Moon", "a mirror", "a rock"], "label": ["A", "B", "C", "D"]}, "answerKey": "A"}
{"id": "t2", "question": "What do plants need to make food?", "choices": {"text": ["sunlight", "sand", "salt", "smoke"], "label": ["A", "B", "C", "D"]}, "answerKey": "A"}
{"id": "t3", "question": "Which state of matter has a fixed shape?", "choices": {"text": ["gas", "liquid", "solid"], "label": ["1", "2", "3"]}, "answerKey": "3"}
EOF
  cat >"$d/piqa/valid.jsonl" <<'EOF'
{"goal": "Keep bread fresh.", "sol1": "Seal it in a bag.", "sol2": "Leave it in the rain."}
{"goal": "Cool a hot drink.", "sol1": "Heat it on the stove.", "sol2": "Add an ice cube."}
EOF
  printf '0\n1\n' >"$d/piqa/valid-labels.lst"
}

stage_eval() {
  need_run || return $?; [ -n "${SKIP_REASON:-}" ] && return 0
  dev_flag eval
  write_eval_data
  rm -f "$WORK/eval.json"
  tcmd "$BIN" eval --checkpoint "$RUN" --task arc_easy,piqa --data-dir "$WORK/evaldata" --out "$WORK/eval.json" \
    --no-progress "${DEVFLAG[@]}" "${THREADS[@]}" || return $?
  SUMMARY=$(py row /dev/stdout device="$DEVNOTE" results:="$(py eval "$WORK/eval.json")")
}

stage_export() {
  need_run || return $?; [ -n "${SKIP_REASON:-}" ] && return 0
  rm -rf "$WORK/hf"
  tcmd "$BIN" export --format hf "$RUN" "$WORK/hf" || return $?
  local f
  for f in config.json model.safetensors modeling_gqe.py; do
    [ -s "$WORK/hf/$f" ] || { echo "export wrote no $f" >>"$STAGE_LOG"; return 1; }
  done
  SUMMARY=$(py row /dev/stdout files:="$(ls "$WORK/hf" | py lines /dev/stdin 20)")
}

stage_cuda_tests() {
  local t=$BUILD_DIR/test_cuda
  if [ ! -x "$t" ]; then
    [ "$MODE" = dry ] && { SKIP_REASON="no test_cuda in $BUILD_DIR (a build without the CUDA path)"; return 0; }
    echo "no $t" >>"$STAGE_LOG"; return 1
  fi
  local rc
  tcmd "$t" --gtest_color=no --require-device; rc=$?
  SUMMARY=$(py gtest "$STAGE_LOG")
  # 77: the binary saw no CUDA device. On the CPU that is the expected answer (CTest's cuda_on_cpu runs the
  # CPU half already); on the GPU machine it means the GPU is invisible to libtorch: a failure.
  if [ "$rc" -eq 77 ] && [ "$MODE" = dry ]; then SKIP_REASON="no CUDA device here: test_cuda --require-device exits 77"; return 0; fi
  return $rc
}

# The gqe Python package on the GPU: the ops library built with the CUDA path (cmake straight, not pip: the
# device has no scikit-build-core) against this machine's torch, and the package's tests with pytest from the
# carried wheels; the GPU cases of test_cuda_path.py are the ones that cannot run anywhere else.
stage_python_ops() {
  if [ "$MODE" = dry ]; then
    SKIP_REASON="CPU: scripts/test-python.sh builds the package and runs its tests (a CI stage)"; return 0
  fi
  local prefix dir="$BUILD_DIR-py" deps="$WORK/pydeps" gen=(-G Ninja)
  prefix=$(python3 -c 'import torch.utils; print(torch.utils.cmake_prefix_path)' 2>>"$STAGE_LOG") || return 1
  command -v ninja >/dev/null || gen=()
  [ -f "$dir/CMakeCache.txt" ] && gen=()
  tcmd cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" -DGQE_CUDA=ON -DGQE_TORCH_OPS=ON \
    -DGQE_BUILD_TESTS=OFF -DTORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}" -DGQE_DEPS_DIR="$ROOT/.device/deps" \
    -DPython_EXECUTABLE="$(command -v python3)" "${gen[@]}" || return $?
  tcmd cmake --build "$dir" --parallel "$(nproc)" --target gqe_torch_ops || return $?
  if ! python3 -c 'import pytest' 2>/dev/null; then
    [ -d .device/wheels ] || { echo "no pytest here and no .device/wheels (run --prepare here)" >>"$STAGE_LOG"; return 1; }
    tcmd python3 -m pip install -q --no-index --find-links .device/wheels --target "$deps" pytest || return $?
  fi
  local rc
  tcmd env PYTHONPATH="$ROOT/python:$deps" GQE_TORCH_OPS_LIBRARY="$dir/libgqe_torch_ops.so" GQE_BIN="$BIN" \
    python3 -m pytest -q -p no:cacheprovider -rs tests/python/test_cuda_path.py tests/python/test_ops.py \
    tests/python/test_modules.py; rc=$?
  SUMMARY=$(grep -E "^[0-9]+ (passed|failed)|passed|failed" "$STAGE_LOG" | tail -1 | py lines /dev/stdin 1)
  return $rc
}

stage_multi_rank() {
  need_bin || return 1
  [ -s "$TEXT" ] || cat docs/*.md README.md >"$TEXT"
  local steps=20 dev=cuda backend=nccl
  [ "$MODE" = dry ] && steps=2 dev=cpu backend=gloo   # the same launch, two CPU ranks over Gloo
  rm -rf "$WORK/run-2ranks"
  local port=$((29500 + RANDOM % 1000))
  # Each rank takes cuda:LOCAL_RANK; rank 0 writes the run. Both must exit 0.
  tcmd env WORLD_SIZE=2 LOCAL_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port bash -c '
    for r in 0 1; do
      RANK=$r LOCAL_RANK=$r "$0" train --config configs/tiny-gqe.json --data "$1" --out "$2" --steps "$3" --batch 4 \
        --seq 64 --device "$4" --dist-timeout 60 --sample-tokens 0 --threads 1 --log-every 1 &
    done
    a=0; for r in 0 1; do wait -n || a=1; done; exit $a' "$BIN" "$TEXT" "$WORK/run-2ranks" "$steps" "$dev" || return $?
  SUMMARY=$(py row /dev/stdout backend="$backend" ranks:=2 train:="$(py train "$WORK/run-2ranks/metrics.jsonl")")
}

# bench_stage FLAGS...: one `gqe bench` call (a stage each, so a cut-off call keeps the stages before it).
bench_stage() {
  need_bin || return 1
  local json=$WORK/bench/$CUR.json rc
  rm -f "$json"
  tcmd "$BIN" bench "${BENCH_COMMON[@]}" "$@" --out "$WORK/bench/$CUR"; rc=$?
  SUMMARY=$(py bench "$json" "$OUT/bench.jsonl" "$CUR" "$CALL" "$GPU_NAME" "$STAGE_LOG")
  return $rc
}
prefill() { bench_stage --levels core,layer --lengths "$(len "$1")" --no-train --no-decode; }
stage_prefill_4k() { prefill 4096; }
stage_prefill_16k() { prefill 16384; }
stage_prefill_64k() { prefill 65536; }
stage_prefill_2k() { prefill 2048; }
stage_prefill_256k() { prefill 262144; }
stage_prefill_1m() { prefill 1048576; }
stage_train_4k() { bench_stage --levels= --train-length "$(len 4096)" --no-decode; }
stage_train_16k() { bench_stage --levels= --train-length "$(len 16384)" --no-decode; }
decode() { bench_stage --levels= --no-train --decode-batches "$1" --decode-lengths "$(len 4096),$(len 65536)"; }
stage_decode_b1() { decode 1; }
stage_decode_b32() { decode 32; }
stage_block() { bench_stage --levels block --lengths "$(len 4096),$(len 16384),$(len 65536)" --no-train --no-decode; }

# ---- the run ----------------------------------------------------------------------------------------------
DONE_BEFORE=" $(py finished "$STATE") "
FAILED=0 LEFT=0 BLOCKED="" OUT_OF_TIME=""
past_from=1; [ -n "$FROM" ] && past_from=0
record() {  # record STAGE STATUS RC SECONDS STARTED REASON [SUMMARY_JSON [KEEP]]
  local s=$1
  py row "$OUT/stages.jsonl" stage="$s" call="$CALL" priority:="${PRIO[$s]}" status="$2" rc:="$3" seconds:="$4" \
    cap_s:="${CAP[$s]}" started="$5" reason="$6" summary:="${7:-}"
  # The state remembers what ran to an end (passed, failed, capped) and skips for good (KEEP 1, e.g. one
  # GPU); a stage left out by the flags, by the state, for want of another stage or of time runs again later.
  if [ "${8:-0}" = 1 ]; then py row "$STATE" stage="$s" status="$2" call="$CALL"; fi
}

for s in "${NAMES[@]}"; do
  [ "$s" = "$FROM" ] && past_from=1
  started=$(date -u +%FT%TZ)
  if [ -n "$BLOCKED" ]; then record "$s" deferred null 0 "$started" "$BLOCKED"; continue; fi
  if [ -n "$ONLY" ] && [[ ",$ONLY," != *",$s,"* ]]; then record "$s" skipped null 0 "$started" "not asked (--only $ONLY)"; continue; fi
  if [[ ",$SKIP," == *",$s,"* ]]; then record "$s" skipped null 0 "$started" "not asked (--skip)"; continue; fi
  # --from never skips the build: a bare machine needs it, a warm one finds it done in seconds.
  if [ "$past_from" = 0 ] && [ "$s" != build ]; then record "$s" skipped null 0 "$started" "not asked (--from $FROM)"; continue; fi
  if [[ $DONE_BEFORE == *" $s "* ]] && [ "$s" != build ]; then
    record "$s" skipped null 0 "$started" "done in an earlier call (state $STATE; --fresh to run again)"; continue
  fi
  reason=$(pre_skip "$s")
  if [ -n "$reason" ]; then
    record "$s" skipped null 0 "$started" "$reason" "" 1; echo "=== $s: skipped: $reason"; continue
  fi
  now=$(date +%s); left=$((DEADLINE - now)); cap=${CAP[$s]}
  # A stage is worth starting with a third of its cap (20 s at least) left; else the next call runs it, and
  # the stages after it too: priority order holds across calls, so a second call simply picks up the rest.
  need=$((cap / 3)); [ "$need" -lt 20 ] && need=20
  if [ -n "$OUT_OF_TIME" ] || [ "$left" -lt "$need" ]; then
    [ -n "$OUT_OF_TIME" ] || OUT_OF_TIME="out of this call's budget (${left}s left when $s was next): call again"
    record "$s" deferred null 0 "$started" "$OUT_OF_TIME"; LEFT=1; continue
  fi
  cut=0; [ "$left" -lt "$cap" ] && { cap=$left; cut=1; }
  STAGE_DEADLINE=$((now + cap)) STAGE_LOG=$WORK/logs/$s.log CUR=$s SKIP_REASON="" SKIP_KEEP=1 SUMMARY=""
  : >"$STAGE_LOG"
  echo "=== $s (priority ${PRIO[$s]}, cap ${cap}s): ${DESC[$s]}" | tee -a "$OUT/check.log"
  "stage_$s"; rc=$?
  secs=$(( $(date +%s) - now ))
  [ -n "$SUMMARY" ] && ! python3 -c 'import json,sys; json.loads(sys.argv[1])' "$SUMMARY" 2>/dev/null && SUMMARY=""
  keep=1
  if [ -n "$SKIP_REASON" ] && [ "$rc" -eq 0 ]; then
    status=skipped reason=$SKIP_REASON rc_out=null keep=$SKIP_KEEP
  elif [ "$rc" -eq 0 ]; then
    status=ok reason="" rc_out=0
  elif [ "$rc" -eq 124 ] && { [ "$cut" = 1 ] || [ "$s" = build ]; }; then
    # A build stopped midway is not a failure: on a warm machine the next call's ninja goes on from there.
    status=cut reason="stopped after ${secs}s by the budget or its cap: call again (a warm machine keeps its progress)" rc_out=124 keep=0; LEFT=1
  elif [ "$rc" -eq 124 ]; then
    status=timeout reason="hit its cap of ${CAP[$s]}s" rc_out=124; FAILED=1
  else
    status=failed reason="exit status $rc" rc_out=$rc; FAILED=1
  fi
  record "$s" "$status" "$rc_out" "$secs" "$started" "$reason" "$SUMMARY" "$keep"
  printf '=== %s: %s in %ss %s\n' "$s" "$status" "$secs" "$reason"
  if [ "$status" = failed ] || [ "$status" = timeout ]; then tail -n 15 "$STAGE_LOG" | sed 's/^/    /'; fi
  # Without a build nothing else can run: the other stages are recorded as left, not as done.
  [ "$s" = build ] && [ "$status" != ok ] && [ "$status" != skipped ] && BLOCKED="the build did not pass ($status)"
done

# ---- the summary ------------------------------------------------------------------------------------------
{
  echo "gpu-check $MODE run $CALL on $GPU_NAME ($NGPU GPU(s)), $(( $(date +%s) - T0 ))s of a ${BUDGET}s budget"
  py report "$OUT/stages.jsonl" "$CALL"
  done_now=$(py finished "$STATE")
  # The build always runs (a no-op on a warm machine): it is never left, never skipped by these hints.
  todo="" skip=""
  for s in "${NAMES[@]:1}"; do
    if [[ " $done_now " == *" $s "* ]]; then skip+="${skip:+,}$s"; else todo+="${todo:+ }$s"; fi
  done
  if [ -n "$todo" ]; then
    echo "left for another call: $todo"
    echo "  warm machine: bash scripts/gpu-check.sh   (the state in $STATE remembers the rest)"
    echo "  bare machine: bash scripts/gpu-check.sh${skip:+ --skip $skip}"
  fi
} | tee "$OUT/summary.txt"
# check.log beyond the 16 MiB a file may be when it comes back: keep its end.
if [ "$(stat -c %s "$OUT/check.log" 2>/dev/null || echo 0)" -gt $((15 * 1024 * 1024)) ]; then
  tail -c $((15 * 1024 * 1024)) "$OUT/check.log" >"$OUT/check.log.tmp" && mv "$OUT/check.log.tmp" "$OUT/check.log"
fi

if [ "$MODE" = dry ]; then
  py check "$OUT/stages.jsonl" "$OUT/bench.jsonl" "$CALL" "${NAMES[@]}" || exit 1
  nfiles=$(find "$OUT" -type f | wc -l)
  [ "$nfiles" -le 8 ] || { echo "dry run check: $nfiles files under OUT, more than the 8 that come back"; exit 1; }
fi
[ "$FAILED" = 1 ] && exit 1
[ "$LEFT" = 1 ] && exit 3
exit 0
