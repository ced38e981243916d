#!/usr/bin/env python3
"""hf_venv.ensure: a venv is reused only when complete (its marker written last), an incomplete
one (an install that was killed or failed) is deleted and made again, a changed requirements
file gets a new venv, and too little disk stops it before it starts. Runs offline: the requirements here need no download."""
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import hf_venv  # noqa: E402


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["XDG_CACHE_HOME"] = os.path.join(tmp, "cache")
        req = os.path.join(tmp, "req.txt")
        with open(req, "w") as f:
            f.write("# nothing to install\n")
        check = "import sys; print(sys.prefix)"
        py = hf_venv.ensure(sys.executable, req, check, name="t")
        venv = os.path.dirname(os.path.dirname(py))
        marker = os.path.join(venv, hf_venv.MARKER)
        if not os.path.exists(marker):
            fail("no marker after a complete install")
        out = subprocess.run([py, "-c", check], capture_output=True, text=True).stdout.strip()
        if os.path.realpath(out) != os.path.realpath(venv):
            fail("the venv's python runs in %s, not %s" % (out, venv))

        # Reused as it is: a file put there survives.
        stamp = os.path.join(venv, "stamp")
        open(stamp, "w").close()
        if hf_venv.ensure(sys.executable, req, check, name="t") != py or not os.path.exists(stamp):
            fail("a complete venv was not reused")

        # Incomplete (no marker, as after a killed install): deleted and made again.
        os.remove(marker)
        if hf_venv.ensure(sys.executable, req, check, name="t") != py:
            fail("the venv moved")
        if os.path.exists(stamp) or not os.path.exists(marker):
            fail("an incomplete venv was reused instead of made again")

        # A failed install leaves no marker, and says why.
        bad = os.path.join(tmp, "bad.txt")
        with open(bad, "w") as f:
            f.write("./no-such-local-package\n")
        try:
            hf_venv.ensure(sys.executable, bad, check, name="t")
            fail("an impossible install succeeded")
        except SystemExit as e:
            if "could not create" not in str(e):
                fail("unexpected message: %s" % e)
        bad_venvs = [d for d in os.listdir(os.path.dirname(venv)) if d.startswith("t-") and d != os.path.basename(venv)
                     and not d.endswith(".lock")]
        if len(bad_venvs) != 1 or os.path.exists(os.path.join(os.path.dirname(venv), bad_venvs[0], hf_venv.MARKER)):
            fail("the failed install left %s" % bad_venvs)

        # Too little disk: a clear error naming the folder, before anything is created.
        short = os.path.join(tmp, "short.txt")
        with open(short, "w") as f:
            f.write("# needs more disk than any machine has\n")
        try:
            hf_venv.ensure(sys.executable, short, check, name="t", disk=(10**18, 10**9))
            fail("an install with no room went ahead")
        except SystemExit as e:
            cache = os.path.dirname(venv)
            if "not enough disk" not in str(e) or cache not in str(e) or "GB free for the environment" not in str(e):
                fail("unexpected message: %s" % e)
        if os.path.exists(hf_venv.venv_dir(sys.executable, short, name="t")):
            fail("the refused install created its folder")

        # The large wheels one pip call each, the rest together, comments dropped.
        with open(short, "w") as f:
            f.write("# top\nnvidia-cublas==1 # CUDA\nsix==1.16.0\n\ntorch==2.0\nidna==3\n")
        if hf_venv.install_batches(short) != [["nvidia-cublas==1"], ["torch==2.0"], ["six==1.16.0", "idna==3"]]:
            fail("install batches: %s" % hf_venv.install_batches(short))

        # Another requirements file: another venv.
        with open(req, "a") as f:
            f.write("# changed\n")
        if hf_venv.venv_dir(sys.executable, req, name="t") == venv:
            fail("a changed requirements file maps to the old venv")
    print("PASS")


if __name__ == "__main__":
    main()
