#!/usr/bin/env bash
# Runs a command as if on an older CPU, so one machine tests what another would run: Hearth's own
# kernels (HEARTH_ISA), LibTorch's (ATEN_CPU_CAPABILITY) and OpenBLAS's (OPENBLAS_CORETYPE) are
# capped to the instruction set named. oneDNN is left alone: LibTorch sends it only bf16 matmuls,
# and only after reading the real CPU's AVX-512 flags, so capping it makes those calls fail where
# a real AVX2 machine would never make them.
#   bash scripts/as_cpu.sh avx2 build/tests/test_quant       # an AVX2 + FMA machine (no AVX-512)
#   bash scripts/as_cpu.sh portable build/tests/test_quant   # the portable fallbacks everywhere
set -euo pipefail
profile="${1:?usage: as_cpu.sh avx2|portable COMMAND...}"
shift
case "$profile" in
  avx2)
    export HEARTH_ISA=avx2 ATEN_CPU_CAPABILITY=avx2
    export OPENBLAS_CORETYPE=Haswell ;;
  portable)
    export HEARTH_ISA=scalar ATEN_CPU_CAPABILITY=default
    export OPENBLAS_CORETYPE=Nehalem ;;
  *) echo "as_cpu.sh: unknown profile \"$profile\" (avx2 or portable)" >&2; exit 2 ;;
esac
exec "$@"
