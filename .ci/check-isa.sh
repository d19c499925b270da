#!/usr/bin/env bash
# Fails when a compiled module holds instructions beyond the portable baseline the wheels are
# built for (GGML_NATIVE=OFF), as a build for the build machine (-march=native) would:
#   x86_64:  no AVX-512 (zmm registers, xmm/ymm16-31, mask registers, embedded broadcasts) and
#            no VNNI; AVX2, FMA and F16C are the baseline (reported, not refused).
#   aarch64: no SVE (z/p registers) and no dot-product or i8mm instructions.
#
#   .ci/check-isa.sh path/to/_core.so [...]
set -euo pipefail
status=0
for so in "$@"; do
    dis=$(mktemp)
    objdump -d --no-show-raw-insn "$so" > "$dis"
    case "$(file -b "$so")" in
        *x86-64*)
            beyond=$(grep -c -E '%zmm|%[xy]mm(1[6-9]|2[0-9]|3[01])\b|%k[1-7]\b|\{1to[0-9]+\}|vpdpbusd|vpdpwssd' "$dis" || true)
            baseline=$(grep -c -E '%ymm' "$dis" || true)
            echo "$so: $beyond AVX-512/VNNI instructions, $baseline AVX/AVX2 (256-bit) instructions"
            ;;
        *aarch64*|*ARM\ aarch64*)
            beyond=$(grep -c -E '\bz[0-9]+\.[bhsdq]\b|\bp[0-9]+\.[bhsd]\b|\b[su]dot\b|\b(s|u|us)mmla\b' "$dis" || true)
            echo "$so: $beyond SVE/dot-product/i8mm instructions"
            ;;
        *)
            echo "$so: not an x86_64 or aarch64 ELF file" >&2
            beyond=1
            ;;
    esac
    rm -f "$dis"
    [ "$beyond" -eq 0 ] || status=1
done
exit "$status"
