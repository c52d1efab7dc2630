#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The in-guest half of tests/kmod/test_guest.py (one boot for everything). Runs, each as its own
# pytest session with a JUnit report in $PF_RESULTS (the read-write results directory):
#   loader   tests/kmod/guest/test_loader_guest.py  (load/unload/status/bad params/in use/EBUSY),
#            then test_forced_unload.py (rmmod -f under a running agent; taints the guest kernel)
#   kmod     tests/drivers with PYFALCO_TEST_ENGINE=kmod, the module loaded by the loader
#   parity   tests/kmod/guest/test_parity.py        (both drivers at once, record by record)
#   ebpf     tests/drivers on the eBPF driver in this kernel (CO-RE on a second kernel version)
#   scap     (with PF_PHASES containing it) Falco's 2022 module loads and unloads
# Environment: PYFALCO_KMOD_KO (the built module), PYFALCO_LIBRARY, PF_RESULTS, PF_PHASES.
set -u
cd "$(dirname "$0")/../.."
export PYTHONPATH=$PWD PYFALCO_IN_GUEST=1
py=${PF_PYTHON:-$PWD/.venv/bin/python}
phases=${PF_PHASES:-loader kmod parity ebpf}
status=0
phase() {
    local name=$1; shift
    local t0=$SECONDS
    echo "=== phase $name"
    "$@"
    local rc=$?
    echo "$name $rc $((SECONDS - t0))" >>"$PF_RESULTS/phases.txt"
    echo "=== phase $name: rc=$rc in $((SECONDS - t0)) s"
    ((rc == 0)) || status=1
}
pytest_run() {
    local name=$1; shift
    (cd "$1" && shift && "$py" -m pytest -q -rfE -p no:cacheprovider --junitxml="$PF_RESULTS/$name.xml" "$@")
}
for p in $phases; do
    case $p in
    loader) phase loader pytest_run loader tests/kmod/guest test_loader_guest.py test_forced_unload.py ;;
    kmod)
        "$py" -m pyfalco.driver_loader load --ko "$PYFALCO_KMOD_KO" || status=1
        PYFALCO_TEST_ENGINE=kmod phase kmod pytest_run kmod tests/drivers
        "$py" -m pyfalco.driver_loader unload ;;
    parity) phase parity pytest_run parity tests/kmod/guest test_parity.py -s ;;
    ebpf) phase ebpf pytest_run ebpf tests/drivers ;;
    *) echo "unknown phase $p"; status=1 ;;
    esac
done
exit $status
