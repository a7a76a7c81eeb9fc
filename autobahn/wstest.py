"""Runs the Autobahn|Testsuite's `wstest` from a `pip install --target` dir.

Python 2.7 only (the suite's own requirement). Usage:
    python2.7 -E -s autobahn/wstest.py SITE_DIR [wstest arguments...]

A `--target` install is not a site directory by itself: zope.interface is a
namespace package whose `*-nspkg.pth` file must be processed, which
PYTHONPATH alone does not do (Twisted then fails to import). site.addsitedir
processes it, without touching the interpreter's own site-packages.
"""
import site
import sys


def main():
    site.addsitedir(sys.argv[1])
    sys.argv = ["wstest"] + sys.argv[2:]
    from autobahntestsuite.wstest import run

    return run()


if __name__ == "__main__":
    sys.exit(main())
