#!/usr/bin/env bash
# Installs the CUDA toolkit that the CUDA wheels are built with, from NVIDIA's packages on the
# Python package index (by name, like everything else this project fetches), as a toolkit tree
# that CMake's FindCUDAToolkit and nvcc accept: PREFIX/{bin,include,lib,nvvm}.
#
#   .ci/cuda-toolkit.sh 13.0.2 /opt/cuda [python]
#
# Used by .github/workflows/wheels.yml inside the manylinux container (cibuildwheel before-all).
set -euo pipefail
version=$1
prefix=$2
python=${3:-python3}
major=${version%%.*}

"$python" -m pip install --disable-pip-version-check -q --target "$prefix.packages" \
    "cuda-toolkit[nvcc,nvvm,crt,cudart,cublas,cccl]==$version"
ln -sfn "$prefix.packages/nvidia/cu$major" "$prefix"
# nvcc.profile links from lib64; the wheels install lib.
ln -sfn lib "$prefix/lib64"
# The wheels ship only the versioned names (libcudart.so.13); the linker looks for libcudart.so.
cd "$prefix/lib"
for lib in libcudart libcublas libcublasLt; do
    ln -sf "$lib.so.$major" "$lib.so"
done
"$prefix/bin/nvcc" --version | tail -n 2
