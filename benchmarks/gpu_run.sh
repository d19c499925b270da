#!/usr/bin/env bash
# One GPU session's measurements, as run on the lent H200 (no network there; docs/benchmarks.md):
#   bash benchmarks/gpu_run.sh CASE...     CASE: test | sd15-512 | sdxl-1024 | sdxl-512-50 | rounding |
#                                                profile-sd15 | profile-sdxl | quant-sd15 | quant-sdxl | wan |
#                                                final-sd15-512 | final-sdxl-1024 | final-sdxl-512-50 |
#                                                cpu16-sd15-256 | cpu2-sd15-256 | cpu16-sdxl-512 | profile-cpu16 |
#                                                overhead-sd15-512 | cpu-scaling | profile-cpu16-sdxl
# final-*: sdcpp at its defaults against diffusers, eight images each (the before/after table);
# result files are named with the date (or $TAG), and only .json and .md come back (a call returns eight files).
# overhead-*: sdcpp alone, its generate() against the engine's own time, ten images.
# cpu*: the host's CPU, all its cores (each tool's default threads) or two (taskset -c 0,1); cpu-scaling: the
# UNet's convolutions and linear layers alone at 1 to 16 threads, torch's beside them (how far each shape
# scales with threads, against the peer).
# Wheels and the engine archive travel in .device/. The build folder is kept while the machine stays
# warm, so a second call skips the build. Results are copied to $OUT. CUDA=OFF builds for the CPU alone, for
# the cpu* cases: 54 s there against 283 s with CUDA's kernels.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
site=/tmp/sdsite
export PYTHONPATH=$site PYTHONUNBUFFERED=1 SDCPP_TEST_DEVICE=CUDA0
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target $site .device/*.whl || exit 1
if ! ls $site/sdcpp/_core*.so >/dev/null 2>&1; then
  start=$(date +%s)
  backend="-DSD_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90" dir=build/cuda
  [ "${CUDA:-ON}" = OFF ] && backend="" dir=build/cpu
  CMAKE_ARGS="$backend -DSDCPP_ENGINE_ARCHIVE=$PWD/.device/stable_diffusion_cpp_python-0.4.7.tar.gz" \
    python3 -m pip install -q --no-build-isolation --no-deps --config-settings=build-dir=$dir --target $site . \
    > "$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
  echo "build: $(( $(date +%s) - start )) s"
fi
compare() {  # family size steps name
  for cfg in on off; do
    only=sdcpp; [ $cfg = on ] && only=sdcpp,diffusers
    python3 benchmarks/compare.py --device cuda --family $1 --size $2 --steps $3 --runs 3 --only $only \
      --batched-cfg $cfg --name $4-cfg-$cfg 2>&1 | tail -15
    cp -f benchmarks/results/$4-cfg-$cfg.* "$OUT"/
  done
}
final() {  # device family size steps name [taskset cpus]
  local pin=(); [ -n "${6:-}" ] && pin=(taskset -c "$6")
  local name=$5-${TAG:-$(date +%F)}
  "${pin[@]}" python3 benchmarks/compare.py --device $1 --family $2 --size $3 --steps $4 --runs ${RUNS:-8} \
    --only sdcpp,diffusers --name $name 2>&1 | tail -12
  cp -f benchmarks/results/$name.json benchmarks/results/$name.md "$OUT"/
}
for case in "$@"; do
  echo "== $case"
  case $case in
    test) python3 -m pytest -q -p no:cacheprovider --tb=line tests/test_batched_cfg.py tests/test_profile.py \
        tests/test_generate.py tests/test_ops.py -k "batched or profil or flash or gpu or conv_2d or float16_products or linear or geglu or few_rows or soft_max or softmax or millisecond" > "$OUT/test.txt" 2>&1; grep -E "assert|passed|failed" "$OUT/test.txt" | tail -20 ;;
    sd15-512) compare sd15 512 20 sd15-cuda-512 ;;
    sdxl-1024) compare sdxl 1024 20 sdxl-cuda-1024 ;;
    sdxl-512-50) compare sdxl 512 50 sdxl-cuda-512-50 ;;
    rounding) python3 -c 'import sys; sys.path.insert(0, "."); from tests import models; from pathlib import Path; models.build_once(Path("/tmp/sdcpp-bench-models/sd15.safetensors"), models.write_sd15_single_file)' && python3 benchmarks/gpu_rounding.py /tmp/sdcpp-bench-models/sd15.safetensors --device cuda 2>&1 | grep '^|' | tee "$OUT/rounding-cuda.md" ;;
    profile-sd15) python3 benchmarks/profile_ops.py /tmp/sdcpp-bench-models/sd15.safetensors --device cuda --size 512 \
        --steps 2 --json "$OUT/profile-sd15-cuda-512.json" > "$OUT/profile-sd15-cuda-512.txt" 2>&1; head -60 "$OUT/profile-sd15-cuda-512.txt" ;;
    profile-sdxl) python3 benchmarks/profile_ops.py /tmp/sdcpp-bench-models/sdxl.safetensors --device cuda --size 1024 \
        --steps 2 --json "$OUT/profile-sdxl-cuda-1024.json" > "$OUT/profile-sdxl-cuda-1024.txt" 2>&1; head -60 "$OUT/profile-sdxl-cuda-1024.txt" ;;
    quant-sd15) python3 -c 'import sys; sys.path.insert(0, "."); from tests import models; from pathlib import Path; models.build_once(Path("/tmp/sdcpp-bench-models/sd15.safetensors"), models.write_sd15_single_file)' && \
        python3 -m benchmarks.quantization /tmp/sdcpp-bench-models/sd15.safetensors --device cuda --threads 16 --size 512 --steps 20 \
        --types source,q8_0,q5_0,q5_K,q4_0,q4_K --workdir /tmp/quant --json "$OUT/quantization-sd15-cuda-512.json" --markdown "$OUT/quantization-sd15-cuda-512.md" 2>&1 | tail -8 ;;
    quant-sdxl) python3 -c 'import sys; sys.path.insert(0, "."); from tests import models, models_sdxl; from pathlib import Path; models.build_once(Path("/tmp/sdcpp-bench-models/sdxl.safetensors"), models_sdxl.write_sdxl_single_file)' && \
        python3 -m benchmarks.quantization /tmp/sdcpp-bench-models/sdxl.safetensors --device cuda --threads 16 --size 1024 --steps 20 --discard \
        --types source,q8_0,q4_0,q4_K --workdir /tmp/quant --json "$OUT/quantization-sdxl-cuda-1024.json" --markdown "$OUT/quantization-sdxl-cuda-1024.md" 2>&1 | tail -6 ;;
    final-sd15-512) final cuda sd15 512 20 sd15-cuda-512 ;;
    final-sdxl-1024) final cuda sdxl 1024 20 sdxl-cuda-1024 ;;
    final-sdxl-512-50) RUNS=5 final cuda sdxl 512 50 sdxl-cuda-512-50 ;;
    overhead-sd15-512) python3 benchmarks/compare.py --device cuda --family sd15 --size 512 --steps 20 --runs 10 \
        --only sdcpp --name sd15-cuda-512-overhead-$(date +%F) 2>&1 | tail -4; cp -f benchmarks/results/sd15-cuda-512-overhead-$(date +%F).* "$OUT"/ ;;
    cpu16-sd15-256) RUNS=${RUNS:-3} final cpu sd15 256 4 sd15-cpu-256-xeon-16t ;;
    cpu2-sd15-256) RUNS=2 final cpu sd15 256 4 sd15-cpu-256-xeon-2t 0,1 ;;
    cpu16-sdxl-512) RUNS=${RUNS:-2} final cpu sdxl 512 4 sdxl-cpu-512-xeon-16t ;;
    cpu-scaling) for t in 1 2 4 8 16; do echo "== threads $t"; python3 benchmarks/conv_times.py --threads $t --repeats 4 --torch
        python3 -m benchmarks.linear_times --threads $t --repeats 4 --torch; done 2>&1 | tee "$OUT/scaling-xeon-$(date +%F).txt" ;;
    profile-cpu16) python3 benchmarks/profile_ops.py /tmp/sdcpp-bench-models/sd15.safetensors --device cpu --size 256 \
        --steps 2 --json "$OUT/profile-sd15-cpu-256-xeon-16t.json" > "$OUT/profile-sd15-cpu-256-xeon-16t.txt" 2>&1; head -40 "$OUT/profile-sd15-cpu-256-xeon-16t.txt" ;;
    profile-cpu16-sdxl) python3 -c 'from pathlib import Path; from benchmarks.compare import make_models; make_models("sdxl", Path("/tmp/sdcpp-bench-models"))' && \
        python3 benchmarks/profile_ops.py /tmp/sdcpp-bench-models/sdxl.safetensors --device cpu --size 512 --steps 1 \
        --json "$OUT/profile-sdxl-cpu-512-xeon-16t.json" > "$OUT/profile-sdxl-cpu-512-xeon-16t.txt" 2>&1
        python3 benchmarks/profile_shapes.py "$OUT/profile-sdxl-cpu-512-xeon-16t.json" --limit 30 >> "$OUT/profile-sdxl-cpu-512-xeon-16t.txt"
        python3 benchmarks/torch_profile.py /tmp/sdcpp-bench-models/sdxl-diffusers --family sdxl --size 512 --limit 30 \
        2>&1 | grep -v USDT > "$OUT/torch-profile-sdxl-cpu-512-xeon-16t.txt"; head -30 "$OUT"/*profile-sdxl*.txt ;;
    wan) python3 benchmarks/wan_video.py --device cuda --width 832 --height 480 --frames 33 --steps 20 --runs 2 2>&1 | \
        tee "$OUT/wan-cuda-832x480x33.txt" ;;
  esac
  case $case in sd15-512|sdxl-1024|sdxl-512-50|rounding|profile-sd15|profile-sdxl) cp -f benchmarks/results/*cfg-* "$OUT"/ 2>/dev/null ;; esac
done
