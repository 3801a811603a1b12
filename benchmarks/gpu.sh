#!/usr/bin/env bash
# Every GPU measurement in one script, for a lent GPU machine (the image has torch, numpy,
# pillow, pytest, tensorboard; nothing is installed). Runs from source and writes JSON under $OUT.
#   DATA=.gpudata/wikiart64 OUT=/tmp/out bash benchmarks/gpu.sh
# .gpudata/ (git-ignored, carried to the GPU machine) holds copies of ../shared/data/wikiart64/{baroque,
# romanticism,impressionism}, photos/{tubingen,golden_gate,sailboat}.jpg and paintings/{vangogh_starry_night,
# hokusai_great_wave,munch_the_scream}.jpg, and wikiart128/romanticism (the fidelity part).
# PARTS picks sections.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/gpu}
DATA=${DATA:-../shared/data/wikiart64}
QUALITY_KIMG=${QUALITY_KIMG:-1000}
mkdir -p "$OUT"
export PYTHONPATH=src PYTHONUNBUFFERED=1 BRUSHWORK_CACHE=/tmp/brushwork-cache
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
python3 -c "import torch; print('torch', torch.__version__)" >> "$OUT/gpu.txt"

PARTS=${PARTS:-"tests throughput quality vae style creative fidelity"}
if [[ $PARTS == *tests* ]]; then
echo "== GPU tests"
python3 -m pytest -q -m gpu tests/test_gpu.py 2>&1 | tail -5 | tee "$OUT/gpu_tests.txt"

fi
if [[ $PARTS == *throughput* ]]; then
echo "== training throughput"
T="$OUT/throughput.jsonl"
python3 benchmarks/train_throughput.py --device cuda --res 64 --batch 128 --seconds 3 --rounds 3 --data "$DATA" --json "$T" > /dev/null
python3 benchmarks/train_throughput.py --device cuda --res 64 --batch 1024 --seconds 3 --rounds 3 --no-loader --compile --json "$T" > /dev/null
python3 benchmarks/train_throughput.py --device cuda --res 128 --batch 128 --seconds 3 --rounds 3 --no-loader --json "$T" > /dev/null
python3 benchmarks/train_throughput.py --device cuda --res 128 --batch 1024 --seconds 3 --rounds 3 --no-loader --json "$T" > /dev/null
python3 -c "
import json
for line in open('$T'):
    r = json.loads(line)
    print(r['res'], r['batch'], r['img_per_s'], r['ratio_vs_best_textbook'], r.get('end_to_end_ratio'))
"

fi
if [[ $PARTS == *quality* ]]; then
echo "== quality (dcgan vs modern at equal images)"
python3 benchmarks/quality.py --device cuda --data "$DATA" --kimg "$QUALITY_KIMG" --batch 128 \
    --out "$OUT/quality" --quiet 2>&1 | tail -40
fi
if [[ $PARTS == *vae* ]]; then
echo "== VAE vs textbook VAE loop"
python3 benchmarks/vae.py --device cuda --data "$DATA" --kimg "${VAE_KIMG:-100}" --batch 128 --width 64 \
    --seconds 3 --json "$OUT/vae.jsonl"
fi
if [[ $PARTS == *style* ]]; then
echo "== style transfer: Gatys and AdaIN vs the tutorial loop, 512 px"
for pair in tubingen:vangogh_starry_night golden_gate:hokusai_great_wave sailboat:munch_the_scream; do
    python3 benchmarks/style.py --device cuda --size 512 --steps 300 --encoder random \
        --content ".gpudata/photos/${pair%%:*}.jpg" --style ".gpudata/paintings/${pair##*:}.jpg" \
        --out "$OUT/style-${pair%%:*}" --json "$OUT/style.jsonl"
done
fi
if [[ $PARTS == *creative* ]]; then
echo "== imitation vs innovation: unconditional, conditional, creative at equal images"
python3 benchmarks/creative.py --device cuda --data "$DATA" --res 64 --width 64 --batch 128 \
    --kimg "${CREATIVE_KIMG:-500}" --originality-features random --out "$OUT/creative" --quiet 2>&1 | tail -60
fi
if [[ $PARTS == *fidelity* ]]; then
echo "== fidelity: fastgan vs modern at 128 px, equal seconds (SWD vs held-out paintings)"
python3 benchmarks/fidelity.py --device cuda --data "${DATA128:-.gpudata/wikiart128/romanticism}" \
    --seconds "${FIDELITY_SECONDS:-90}" --eval-every 15 --batch 16 --out "$OUT/fidelity" --quiet 2>&1 | tail -30
fi
