#!/usr/bin/env bash
# Install everything the test suite needs, then lint and run the whole suite.
# As root on Debian it also installs the system tools the real-filesystem and Corosync tests
# use; without root those tests skip with a reason (in CI they run: CI is root).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

# Debian packages the tests drive for real (keep in sync with README "Testing" and CONTRIBUTING.md "Tests").
APT_PACKAGES=(
  e2fsprogs util-linux mount    # mkfs.ext4, losetup, mount, setpriv, fsfreeze
  fdisk                         # sfdisk: a partitioned loop device (device tests)
  btrfs-progs dmsetup           # btrfs over two loop devices; dm where the kernel has it
  perl libfile-sync-perl        # pveperf's method, re-run as an independent reference (File::Sync::fsync, as pveperf)
  fio                           # independent reference measurements
  ioping                        # bench/compare.py's paced case: O_SYNC writes at an interval (issue 16)
  gcc libc6-dev                 # bench/syncloop.c, the C loop bench/compare.py's limit case builds
  corosync iproute2 iputils-ping             # a real Corosync ring in network namespaces (ip netns, tc netem)
  procps kmod
  udev                          # a real systemd-udevd the device tests start and stop (tests/test_device_udev.py)
  strace                        # the ring-id probe and the pveperf workloads make exactly their originals' calls
  prometheus-node-exporter      # the real textfile-collector parser for --format prometheus
  ansible-core                  # contrib/ansible/collect.yml, run against localhost
  bindfs                        # a real FUSE filesystem at /etc/pve (pmxcfs refusal) and of type fuse.glusterfs
  bpftrace                      # fsyncprobe watch (tests/test_watch_*.py)
  systemd                       # systemd-analyze verify of contrib/systemd/ (nothing is started)
  # the Debian package (tests/test_debian_package.py): `make deb`, clean Debian 12/13 roots, man -l
  make build-essential debhelper dh-python pybuild-plugin-pyproject python3-all python3-setuptools
  python3-click python3-rich python3-psutil python3-pyudev python3-tabulate debootstrap man-db
)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}" >/dev/null
  # corosync's package starts a service on install where systemd runs; our tests start their own.
  if command -v systemctl >/dev/null 2>&1; then systemctl stop corosync >/dev/null 2>&1 || true; fi
  if command -v systemctl >/dev/null 2>&1; then systemctl stop prometheus-node-exporter >/dev/null 2>&1 || true; fi
fi

"$PYTHON" -m pip install -q --root-user-action=ignore -e '.[test]'

"$PYTHON" -m ruff check fsyncprobe tests bench tools
"$PYTHON" -m mypy
exec "$PYTHON" -m pytest -q -p no:cacheprovider "$@"
