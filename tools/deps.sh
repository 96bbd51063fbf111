#!/bin/sh
# tools/deps.sh [build|test|slurm] — make sure what patchgrid needs is installed.
#
# build: the C libraries, found through pkg-config (on a cluster: load the modules
#        that provide them and set PKG_CONFIG_PATH; nothing is installed there).
# test:  build + cmocka + /usr/bin/python3 with torch, numpy, h5py, pytest, xarray,
#        h5netcdf, matplotlib + node/npm.
# slurm: test + slurm-wlm and munge.
# Missing Debian packages are installed with apt-get when running as root on a
# machine that has it; otherwise the script names what is missing and fails.
set -eu
what=${1:-build}

pc_pkgs="hdf5-openmpi openblas yaml-0.1 libpcre2-8 jansson libpng libcrypto"
deb_for_pc() {
    case $1 in
    hdf5-openmpi) echo "libhdf5-openmpi-dev hdf5-tools libopenmpi-dev openmpi-bin" ;;
    openblas) echo libopenblas-dev ;;
    yaml-0.1) echo libyaml-dev ;;
    libpcre2-8) echo libpcre2-dev ;;
    jansson) echo libjansson-dev ;;
    libpng) echo libpng-dev ;;
    libcrypto) echo libssl-dev ;;
    cmocka) echo libcmocka-dev ;;
    esac
}

missing_debs=""
missing_names=""
need_pc() {
    for p in "$@"; do
        if ! pkg-config --exists "$p" 2>/dev/null; then
            missing_names="$missing_names $p(pkg-config)"
            missing_debs="$missing_debs $(deb_for_pc "$p")"
        fi
    done
}
need_cmd() { # need_cmd COMMAND DEBIAN-PACKAGES...
    c=$1; shift
    if ! command -v "$c" >/dev/null 2>&1; then
        missing_names="$missing_names $c"
        missing_debs="$missing_debs $*"
    fi
}

need_cmd pkg-config pkg-config
need_cmd mpicc libopenmpi-dev openmpi-bin
need_cmd make make
need_pc $pc_pkgs
if [ "$what" = test ] || [ "$what" = slurm ]; then
    need_pc cmocka
    need_cmd h5dump hdf5-tools
    need_cmd node nodejs
    need_cmd npm npm
    if ! /usr/bin/python3 -c 'import torch, numpy, h5py, pytest, xarray, h5netcdf, matplotlib' 2>/dev/null; then
        missing_names="$missing_names python3-modules"
        missing_debs="$missing_debs python3-torch python3-numpy python3-h5py python3-pytest python3-xarray python3-h5netcdf python3-matplotlib"
    fi
fi
if [ "$what" = slurm ]; then
    need_cmd slurmctld slurm-wlm
    need_cmd munged munge
    need_cmd srun slurm-client
fi

[ -z "$missing_names" ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "deps: installing:$missing_debs" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 || true
    # shellcheck disable=SC2086
    if apt-get install -y -qq $missing_debs >&2; then
        exit 0
    fi
    echo "deps: apt-get install failed" >&2
    exit 1
fi
echo "deps: missing:$missing_names" >&2
echo "deps: on Debian/Ubuntu install:$missing_debs" >&2
echo "deps: elsewhere load modules providing them (pkg-config must find: $pc_pkgs)" >&2
exit 1
