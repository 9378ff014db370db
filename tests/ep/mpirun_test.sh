#!/usr/bin/env bash
# mpirun_test.sh NP PROGRAM [ARGS...]: runs PROGRAM on NP ranks under mpirun (as root too, more ranks than
# cores allowed). Exit code 77 (ctest: skipped) when mpirun is not found.
np=$1; shift
MPIRUN=${MPIRUN:-$(command -v mpirun || true)}
if [ -z "$MPIRUN" ]; then
  echo "SKIP: mpirun not found (install openmpi-bin)"; exit 77
fi
# Open MPI: no network probing beyond this host, no warnings about missing fabrics.
export OMPI_MCA_btl_vader_single_copy_mechanism=${OMPI_MCA_btl_vader_single_copy_mechanism:-none}
exec "$MPIRUN" --allow-run-as-root --oversubscribe -np "$np" "$@"
