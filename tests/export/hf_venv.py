#!/usr/bin/env python3
"""Creates (once) and prints the path of the cached virtual environment with the Hugging Face
stack of requirements-hf.txt (PyTorch from PyPI: ~3 GB with its CUDA libraries, which also run
on machines without a GPU).

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
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REQUIREMENTS = os.path.join(HERE, "requirements-hf.txt")
MARKER = "mousse-venv-complete"
CHECK = "import torch, transformers, safetensors, tokenizers; print(torch.__version__, transformers.__version__)"


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


def ensure(python, requirements=REQUIREMENTS, check=CHECK, name="hf-venv"):
    """Returns the path of the cached venv's python, creating the venv first if needed."""
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
        log("creating", venv, "from", python, "with", requirements)
        if requirements == REQUIREMENTS:
            log("first run only: ~3 GB from PyPI (5.6 GB installed), about 4 minutes")
        t0 = time.time()
        try:
            subprocess.run([python, "-m", "venv", venv], check=True)
            subprocess.run([py, "-m", "pip", "install", "--no-input", "--progress-bar", "off",
                            "-r", requirements], check=True, stdout=sys.stderr)
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
