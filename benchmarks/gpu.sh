#!/usr/bin/env bash
# Every GPU measurement in one script, for a lent GPU machine (the image has torch, numpy,
# pillow, pytest, tensorboard; nothing is installed). Runs from source and writes JSON under $OUT:
# each part's own files, timing.jsonl (seconds per part, skipped parts) and report.json (all of it).
#   OUT=/tmp/out bash benchmarks/gpu.sh
# .gpudata/ (git-ignored, carried to the GPU machine; made by benchmarks/gpudata.sh) holds copies of ../shared/data/wikiart64/{baroque,
# romanticism,impressionism}, photos/{tubingen,golden_gate,sailboat}.jpg and paintings/{vangogh_starry_night,
# hokusai_great_wave,munch_the_scream}.jpg, and wikiart128/romanticism (fidelity and projection).
#
# The whole default run fits one 10-minute call: parts run in order of priority, each with the
# seconds it is expected to take; a part that would overrun BUDGET (seconds, default 560) is
# skipped and listed in timing.jsonl. PARTS picks sections.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/gpu}
DATA=${DATA:-.gpudata/wikiart64}
DATA128=${DATA128:-.gpudata/wikiart128/romanticism}
BUDGET=${BUDGET:-560}
mkdir -p "$OUT"
export PYTHONPATH=src PYTHONUNBUFFERED=1 BRUSHWORK_CACHE=/tmp/brushwork-cache
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
python3 -c "import torch; print('torch', torch.__version__)" >> "$OUT/gpu.txt"
PARTS=${PARTS:-"tests throughput diffusion latent ttq fidelity projection memory style creative vae quality"}
# (the base is trained alone: PARTS=base, with its own data; see base() below)
START=$SECONDS

# part NAME EXPECTED_SECONDS COMMAND...: run COMMAND when PARTS names it and it fits the budget.
part() {
    local name=$1 expected=$2
    shift 2
    [[ " $PARTS " == *" $name "* ]] || return 0
    local used=$((SECONDS - START))
    if (( used + expected > BUDGET )); then
        echo "{\"part\": \"$name\", \"skipped\": \"needs ~${expected}s, ${used}s of ${BUDGET}s used\"}" >> "$OUT/timing.jsonl"
        echo "== $name skipped (budget)"
        return 0
    fi
    echo "== $name"
    local t0=$SECONDS
    "$@"
    local rc=$?
    echo "{\"part\": \"$name\", \"seconds\": $((SECONDS - t0)), \"exit\": $rc}" >> "$OUT/timing.jsonl"
}

tests() {
    python3 -m pytest -q -m gpu tests/test_gpu.py 2>&1 | tail -15 | tee "$OUT/gpu_tests.txt"
}

throughput() {  # issue 13: eager vs CUDA graphs vs textbook, TFLOP/s against the bf16 peak
    local T="$OUT/throughput.jsonl"
    python3 benchmarks/train_throughput.py --device cuda --res 64 --batch 128 --seconds 2 --rounds 3 \
        --data "$DATA" --cuda-graph --tflops --json "$T" > /dev/null
    python3 benchmarks/train_throughput.py --device cuda --res 64 --batch 1024 --seconds 2 --rounds 3 \
        --no-loader --cuda-graph --compile --tflops --json "$T" > /dev/null
    python3 benchmarks/train_throughput.py --device cuda --res 128 --batch 128 --seconds 2 --rounds 3 \
        --no-loader --cuda-graph --json "$T" > /dev/null
    python3 -c "
import json
for line in open('$T'):
    r = json.loads(line)
    print(r['res'], r['batch'], r['img_per_s'], r['ratio_vs_best_textbook'], r.get('tflops'), r.get('bf16_peak_tflops'))
"
}

ttq() {  # issue 13: SWD vs training seconds, dcgan and modern (eval time not counted)
    python3 benchmarks/quality.py --device cuda --data "$DATA" --seconds "${TTQ_SECONDS:-30}" \
        --eval-every "${TTQ_EVERY:-5}" --batch 128 --n-eval 2000 --out "$OUT/time-to-quality" --quiet 2>&1 | tail -12
}

fidelity() {  # issue 14: fastgan vs modern at 128 px, equal seconds
    python3 benchmarks/fidelity.py --device cuda --data "$DATA128" --seconds "${FIDELITY_SECONDS:-50}" \
        --eval-every 15 --batch 16 --out "$OUT/fidelity" --quiet 2>&1 | tail -30
}

projection() {  # issue 14: projecting held-out paintings into fastgan and modern, VAE beside
    python3 benchmarks/projection.py --device cuda --data "$DATA128" --res 128 --seconds "${PROJECTION_SECONDS:-25}" \
        --n 8 --steps 300 --out "$OUT/projection" --quiet 2>&1 | tail -40
}

memory() {  # issue 14: fastgan's peak GPU memory and speed per resolution and batch (256x8g: CUDA graphs)
    python3 benchmarks/fidelity.py --memory --memory-steps 10 --device cuda --json "$OUT/memory.jsonl" 2>&1 | tail -12
}

style() {
    for pair in tubingen:vangogh_starry_night golden_gate:hokusai_great_wave sailboat:munch_the_scream; do
        python3 benchmarks/style.py --device cuda --size 512 --steps 300 --encoder random \
            --content ".gpudata/photos/${pair%%:*}.jpg" --style ".gpudata/paintings/${pair##*:}.jpg" \
            --out "$OUT/style-${pair%%:*}" --json "$OUT/style.jsonl"
    done
}

creative() {
    python3 benchmarks/creative.py --device cuda --data "$DATA" --res 64 --width 64 --batch 128 \
        --kimg "${CREATIVE_KIMG:-500}" --originality-features random --out "$OUT/creative" --quiet 2>&1 | tail -60
}

vae() {
    python3 benchmarks/vae.py --device cuda --data "$DATA" --kimg "${VAE_KIMG:-100}" --batch 128 --width 64 \
        --seconds 3 --json "$OUT/vae.jsonl"
}

diffusion() {  # issue 20: diffusion training step vs denoising-diffusion-pytorch (its source in .gpudata/pylib)
    for res in 32 64; do
        python3 benchmarks/diffusion.py speed --device cuda --res $res --batch 256 --seconds 3 --rounds 3 \
            --out "$OUT/diffusion" | tail -4
    done
}

memorisation() {  # issue 20: how often diffusion and the GAN copy at 300/2,000/8,000 works, equal images
    # (not in the default PARTS: ~8 minutes alone; run with PARTS=memorisation)
    python3 benchmarks/diffusion.py memorisation --device cuda --data-root "$DATA" --kimg "${MEMO_KIMG:-1000}" --batch 256 \
        --sizes 300,2000,8000 --families diffusion,gan,diffusion-mitigated --mitigation-set dropout=0.1 \
        --n 500 --out "$OUT/memorisation" 2>&1 | tail -12
}

quality() {  # dcgan vs modern at equal images (800k: RESULTS.md's table)
    python3 benchmarks/quality.py --device cuda --data "$DATA" --kimg "${QUALITY_KIMG:-800}" --batch 128 \
        --out "$OUT/quality" --quiet 2>&1 | tail -40
}

latent() {  # issue 30: autoencoder, then latent vs pixel diffusion at equal minutes (romanticism 128 px)
    local L="$OUT/latent"
    python3 benchmarks/latent.py autoencoder --device cuda --data-root "$(dirname "$DATA128")" --styles romanticism \
        --held-out 500 --n 500 --batch 64 --minutes "${LATENT_AE_MINUTES:-1.5}" --out "$L" --json "$L.jsonl" | tail -12
    python3 benchmarks/latent.py versus --device cuda --data-root "$(dirname "$DATA128")" --styles romanticism --held-out 500 \
        --n 500 --batch 128 --minutes "${LATENT_MINUTES:-1.5}" --ae "$L/ae-f4" --out "$L" --json "$L.jsonl" | tail -30
}

base() {  # issue 31: train the shipped base on the GPU (more steps than on the CPU) and pack it into $OUT
    # needs the base's data: GPUDATA=base bash benchmarks/gpudata.sh (wikiart128 baroque + romanticism)
    python3 scripts/train_base.py --wikiart .gpudata/wikiart128 --work /tmp/brushwork-base --device cuda \
        --ae-steps "${BASE_AE_STEPS:-6000}" --ld-steps "${BASE_LD_STEPS:-30000}" --minutes "${BASE_MINUTES:-7}" \
        --shipped "$OUT/builtin_models/base" --docs "$OUT/docs" --hardware "one $(nvidia-smi --query-gpu=name \
        --format=csv,noheader | head -1)" --n 500 2>&1 | tail -25 | tee "$OUT/base.txt"
}

part tests 60 tests
part throughput 150 throughput
part diffusion 90 diffusion
part ttq 100 ttq
part fidelity 140 fidelity
part projection 130 projection
part memory 110 memory
part style 90 style
part memorisation 480 memorisation
part creative 150 creative
part vae 90 vae
part latent 420 latent
part quality 200 quality
part base 480 base

python3 - "$OUT" <<'EOF'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
report = {"gpu": (out / "gpu.txt").read_text() if (out / "gpu.txt").exists() else ""}
for path in sorted(out.rglob("*.json*")):
    if path.name == "report.json":
        continue
    text = path.read_text()
    key = str(path.relative_to(out))
    try:
        report[key] = json.loads(text) if path.suffix == ".json" else [json.loads(l) for l in text.splitlines() if l.strip()]
    except json.JSONDecodeError as exc:
        report[key] = f"unreadable: {exc}"
(out / "report.json").write_text(json.dumps(report, indent=1))
print("report:", out / "report.json")
EOF
