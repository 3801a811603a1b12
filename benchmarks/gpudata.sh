#!/usr/bin/env bash
# Copy what benchmarks/gpu.sh reads from ../shared/data into .gpudata/ (git-ignored; ~57 MB, under
# the 64 MiB a GPU machine's working tree may carry). Run once before `run --carry .gpudata`.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=${SHARED_DATA:-../shared/data}
[[ -d $SRC/wikiart64 ]] || { echo "gpudata: $SRC/wikiart64 not found (see shared/data/SOURCES.md)" >&2; exit 1; }
if [[ ${GPUDATA:-} == base ]]; then  # the base's training data only (64 MB): PARTS=base bash benchmarks/gpu.sh
    rm -rf .gpudata && mkdir -p .gpudata/wikiart128
    for style in baroque romanticism; do cp -r "$SRC/wikiart128/$style" .gpudata/wikiart128/; done
    du -sh .gpudata
    exit 0
fi
mkdir -p .gpudata/wikiart64 .gpudata/wikiart128 .gpudata/photos .gpudata/paintings
for style in baroque romanticism impressionism; do cp -r "$SRC/wikiart64/$style" .gpudata/wikiart64/; done
cp -r "$SRC/wikiart128/romanticism" .gpudata/wikiart128/
cp "$SRC"/photos/{tubingen,golden_gate,sailboat}.jpg .gpudata/photos/
cp "$SRC"/paintings/{vangogh_starry_night,hokusai_great_wave,munch_the_scream}.jpg .gpudata/paintings/
# denoising-diffusion-pytorch (the diffusion speed baseline) and einops, unpacked: the GPU machine
# installs nothing and reaches no network; benchmarks/diffusion.py puts .gpudata/pylib on its path
rm -rf .gpudata/pylib && mkdir -p .gpudata/pylib
python3 -m pip download -q --no-deps -d .gpudata/wheels denoising-diffusion-pytorch==2.3.4 einops
python3 -m zipfile -e .gpudata/wheels/denoising_diffusion_pytorch-*.whl .gpudata/pylib
python3 -m zipfile -e .gpudata/wheels/einops-*.whl .gpudata/pylib
rm -rf .gpudata/wheels
du -sh .gpudata
