#!/usr/bin/env python3
"""Creates (once) and prints the path of the cached virtual environment with the Hugging Face
stack of requirements-hf.txt (PyTorch from PyPI with the CUDA libraries its wheel links: ~2.6 GB
to download, ~4.6 GB installed, on machines without a GPU too).

The install is `pip install --no-deps --no-cache-dir` of the pinned lines of requirements-hf.txt:
the file pins every package the environment holds, so nothing unlisted comes in (triton, 1 GB, is
left out on purpose), and pip keeps no second copy of the wheels in its own cache. The large
wheels (torch, the CUDA libraries) are installed one pip call each, so that pip's temporary folder
holds one of them at a time, not all 2.6 GB. Before it starts, it checks that the disk has room
and otherwise stops with what it needs where.

The environment lives in ${XDG_CACHE_HOME:-~/.cache}/mousse/hf-venv-<key>, the key a hash of the
requirements file and of the Python version, so a changed pin makes a new one. It counts as
complete only when the marker file written after a successful install and import check is
there: an install that was killed leaves no marker, and the next run deletes and redoes it. A
lock file serialises concurrent test runs.

Usage: hf_venv.py [--python PYTHON]   (prints the venv's python on stdout)
   or: import hf_venv; hf_venv.ensure(python) -> the venv's python
"""
import argparse
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REQUIREMENTS = os.path.join(HERE, "requirements-hf.txt")
MARKER = "mousse-venv-complete"
CHECK = "import torch, transformers, safetensors, tokenizers; print(torch.__version__, transformers.__version__)"
# Disk the first install of requirements-hf.txt needs (measured: 4.6 GB installed; pip's
# temporary folder holds at most the largest wheel, under 1 GB, beside it).
INSTALL_BYTES = 5_000_000_000
DOWNLOAD_BYTES = 1_200_000_000
# Wheels installed one pip call each: the large ones.
LARGE_PREFIXES = ("torch==", "nvidia-")


def log(*a):
    print("[hf-venv]", *a, file=sys.stderr, flush=True)


def venv_dir(python, requirements=REQUIREMENTS, name="hf-venv"):
    """The cache folder of the venv for these requirements and this Python version."""
    with open(requirements, "rb") as f:
        req = f.read()
    version = subprocess.run([python, "-c", "import sys; print(sys.version)"], check=True,
                             capture_output=True, text=True).stdout.strip()
    key = hashlib.sha256(req + b"\0" + version.encode()).hexdigest()[:16]
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "mousse", name + "-" + key)


def install_batches(requirements):
    """The pinned lines of the requirements file in pip calls: each large wheel alone, then the
    rest together."""
    with open(requirements) as f:
        lines = [l.split("#")[0].strip() for l in f]
    pins = [l for l in lines if l]
    large = [l for l in pins if l.startswith(LARGE_PREFIXES)]
    rest = [l for l in pins if l not in large]
    return [[l] for l in large] + ([rest] if rest else [])


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def check_disk(venv, install_bytes, download_bytes):
    """Stops before any download when the cache's disk (and pip's temporary folder's) lacks room."""
    cache, tmp = os.path.dirname(venv), tempfile.gettempdir()
    gb = lambda b: "%.1f GB" % (b / 1e9)
    if os.stat(cache).st_dev == os.stat(tmp).st_dev:
        needs = [(cache, install_bytes + download_bytes, "the environment and pip's downloads "
                  "(in %s)" % tmp)]
    else:
        needs = [(cache, install_bytes, "the environment"), (tmp, download_bytes, "pip's downloads")]
    for where, need, what in needs:
        have = free_bytes(where)
        if have < need:
            raise SystemExit("[hf-venv] not enough disk to create %s: %s needs ~%s free for %s, and "
                             "has %s. Free some space, or point XDG_CACHE_HOME (the environment) "
                             "and TMPDIR (pip's downloads) at a larger disk."
                             % (venv, where, gb(need), what, gb(have)))


def ensure(python, requirements=REQUIREMENTS, check=CHECK, name="hf-venv", disk=None):
    """Returns the path of the cached venv's python, creating the venv first if needed. disk:
    (installed bytes, download bytes) the install needs, checked before it starts (by default
    the measured needs of requirements-hf.txt, none for another file)."""
    if disk is None:
        disk = (INSTALL_BYTES, DOWNLOAD_BYTES) if requirements == REQUIREMENTS else (0, 0)
    venv = venv_dir(python, requirements, name)
    os.makedirs(os.path.dirname(venv), exist_ok=True)
    py = os.path.join(venv, "bin", "python")

    with open(venv + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one installer at a time; the others wait, then reuse
        if os.path.exists(os.path.join(venv, MARKER)):
            log("using cached", venv)
            return py
        if os.path.exists(venv):
            log("removing incomplete", venv, "(an earlier install did not finish)")
            shutil.rmtree(venv)
        check_disk(venv, *disk)
        log("creating", venv, "from", python, "with", requirements)
        if requirements == REQUIREMENTS:
            log("first run only: ~2.6 GB from PyPI (~4.6 GB installed), a minute or more")
        t0 = time.time()
        try:
            subprocess.run([python, "-m", "venv", venv], check=True)
            for batch in install_batches(requirements):
                subprocess.run([py, "-m", "pip", "install", "--no-input", "--progress-bar", "off",
                                "--no-deps", "--no-cache-dir", *batch],
                               check=True, stdout=sys.stderr)
            out = subprocess.run([py, "-c", check], check=True, capture_output=True,
                                 text=True).stdout
        except (subprocess.CalledProcessError, OSError) as e:
            raise SystemExit("[hf-venv] could not create %s: %s. It needs PyPI (pip install -r %s) "
                             "once; later runs use the cache." % (venv, e, requirements))
        # The marker last: a venv without it is incomplete whatever else it holds.
        tmp = os.path.join(venv, MARKER + ".tmp")
        with open(tmp, "w") as f:
            f.write(out)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, os.path.join(venv, MARKER))
        log("created in %.0f s (%s)" % (time.time() - t0, out.strip()))
        return py


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--python", default=sys.executable, help="interpreter the venv is made from")
    args = ap.parse_args()
    print(ensure(args.python))
    return 0


if __name__ == "__main__":
    sys.exit(main())
