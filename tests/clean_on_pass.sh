#!/usr/bin/env bash
# Runs one test that works in a folder of its own, and removes that folder when the test passes
# or skips: the tests' checkpoints, shards and logs would otherwise stay in the build tree (the
# data-parallel tests' alone came to ~6 GB). A failing test's folder is kept for inspection, and
# MOUSSE_KEEP_TEST_WORK=1 keeps every folder.
#   clean_on_pass.sh WORK_DIR COMMAND [ARG...]   (tests/CMakeLists.txt: mousse_add_work_test)
WORK=$1
shift
case "$WORK" in
  /?*/?*) ;;  # an absolute path at least two levels deep: never / or a top-level folder
  *) echo "clean_on_pass.sh: WORK_DIR must be an absolute path inside the build tree, got '$WORK'" >&2
     exit 2 ;;
esac
"$@"
rc=$?
if [ "$rc" -eq 0 ] || [ "$rc" -eq 77 ]; then
  [ -n "${MOUSSE_KEEP_TEST_WORK:-}" ] || rm -rf -- "$WORK"
else
  echo "[test] exit status $rc; its files are kept in $WORK"
fi
exit "$rc"
