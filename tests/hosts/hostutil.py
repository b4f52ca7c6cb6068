# Shared by the host tests that drive another language's SQLite binding
# (Node, Go, Ruby, PHP) against Python workers over a real nats-server: each
# host program runs in a work directory where build -> the build directory, so
# the README snippets' `build/litejet` resolves as it does in a checkout.
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "e2e"))

from util import BUILD, SOURCE, Suite, Worker, log, primary_uri, replica_uri  # noqa: E402,F401


def workdir(s, *parts):
    """A directory under the suite's temp dir with build -> the build directory."""
    d = s.path(*parts, "x")[:-2]
    link = os.path.join(d, "build")
    if not os.path.islink(link):
        os.symlink(BUILD, link)
    return d


def host_env(**litejet):
    """The environment of a host process: the caller's (so a sanitizer runtime
    in LD_PRELOAD reaches it) plus LITEJET_<KEY>=value for each keyword."""
    env = dict(os.environ)
    for k, v in litejet.items():
        env["LITEJET_" + k.upper()] = str(v)
    return env


def run(s, argv, what, cwd, env=None, timeout=120.0, expect_rc=0):
    """Runs a host process (bounded); a wrong exit status is a failed check.
    Returns (returncode, stdout, stderr)."""
    p = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    if expect_rc is not None:
        s.eq(p.returncode, expect_rc, "%s: exit status (stderr: %s)" % (what, err.strip()[-600:]))
    return p.returncode, out, err


def last_json(out):
    """The last line of out parsed as JSON (None when it is not)."""
    lines = [ln for ln in out.splitlines() if ln.strip()]
    try:
        return json.loads(lines[-1]) if lines else None
    except ValueError:
        return None


def python_rows(w):
    """Table t's rows on worker w in the form the hosts print them."""
    return w.sql("SELECT id, quote(v), hex(b) FROM t ORDER BY id")


def readme_has_snippet(s, rel):
    """The README shows tests/hosts/<rel> verbatim (the snippet the test runs)."""
    with open(os.path.join(SOURCE, "README.md")) as f:
        readme = f.read()
    with open(os.path.join(HERE, rel)) as f:
        snippet = f.read()
    s.check("```\n" not in snippet and ("\n" + snippet + "```") in readme,
            "README.md shows tests/hosts/%s verbatim" % rel)
