"""The Debian package, installed as a Proxmox VE admin installs it (issue 15).

`make deb` builds dist/fsyncprobe_<version>_all.deb (here into a private directory); then a
clean Debian 12 (bookworm, Proxmox VE 8) and a clean Debian 13 (trixie, Proxmox VE 9) root are
made with debootstrap (minbase, from the mirror this machine's apt uses, nothing cached), the
.deb is installed into each with apt (so Debian's own python3-click, -rich, -psutil, -pyudev and
-tabulate come in: Debian 12's are pyproject.toml's lower bounds), and inside each root run the
commands a user runs, the man page and the bash completion are checked, and the pure part of
the test suite runs on the system Python with Debian's python3-pytest, -hypothesis and
-jsonschema.

Every chroot command runs in a private mount namespace of its own (`unshare -m`, mount
propagation private; unshare(1)): /proc, /sys and /dev are mounted inside it, and the kernel
drops them when its last process exits, whatever path it exits by, so nothing leaks to the host.
The two debootstraps run in parallel. Root only (debootstrap, chroot, mounts).
"""

from __future__ import annotations

import gzip
import json
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import jsonschema
import pytest

import fsyncprobe
from fsyncprobe.cli import main
from fsyncprobe.device.mounts import mount_of
from tests import realfs
from tests.cli_helpers import verdict_exit_code

ROOT = Path(__file__).resolve().parent.parent
RELEASES = ("bookworm", "trixie")
"""Debian 12 and 13: what Proxmox VE 8 and 9 are built on."""

PURE_TESTS = (
    "test_device_snapshots.py", "test_device_stack.py", "test_package_layout.py", "test_parsers_property.py",
    "test_render_verdict.py", "test_report_fields.py", "test_report_schema.py", "test_ring_conf.py",
    "test_ring_evidence.py", "test_ring_model.py", "test_stats_histogram.py", "test_verdict_profiles.py",
    "test_verdict_rules.py", "test_verdict_rules_snapshots.py", "test_cli_badargs.py", "test_watch_script.py",
)
"""The pure part of the suite: no root, no loop device, no Corosync, no tool beyond the package's
own dependencies (statistics, classification of saved snapshots, the ring model, rules,
renderers, parsers, the report schema, the CLI's refusals of bad arguments, the watch's script
generator and reader). They run against the installed package: the suite's copy has
`fsyncprobe` linked to the installed one."""

README_ROOT = "bookworm"
"""Where the README's install commands run: "every install command works on a fresh Debian 12"."""

CHROOT_PACKAGES = ("python3-pytest", "python3-hypothesis", "python3-jsonschema")

pytestmark = [
    pytest.mark.root,
    pytest.mark.slow,
    pytest.mark.skipif(not realfs.is_root(), reason="needs root for debootstrap, chroot and mounts"),
]


def pyproject_version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def debian_mirror(sources_dir: Path = Path("/etc/apt")) -> str:
    """The Debian archive this machine's apt uses (sources.list or deb822 .sources), not its
    security archive; deb.debian.org when none is found."""
    uris: list[str] = []
    for f in sorted([sources_dir / "sources.list", *sources_dir.glob("sources.list.d/*")]):
        if not f.is_file():
            continue
        text = f.read_text(encoding="utf-8", errors="replace")
        uris += re.findall(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)", text, re.M)
        uris += [u for line in re.findall(r"^URIs:\s*(.+)$", text, re.M) for u in line.split()]
    for uri in uris:
        if uri.rstrip("/").endswith("/debian"):
            return uri.rstrip("/")
    return "http://deb.debian.org/debian"


def in_chroot(root: Path, script: str, timeout: float = 600, env: dict[str, str] | None = None,
              tracefs: bool = False) -> subprocess.CompletedProcess[str]:
    """Run `script` (sh) in `root`, with /proc, /sys and /dev mounted in a private mount namespace,
    in a clean environment (plus `env`); with `tracefs`, tracefs too, for bpftrace."""
    r = shlex.quote(str(root))
    extra = " ".join(shlex.quote(f"{k}={v}") for k, v in (env or {}).items())
    trace = f"mount -t tracefs tracefs {r}/sys/kernel/tracing; " if tracefs else ""
    wrapper = (
        f"set -e; mount -t proc proc {r}/proc; mount -t sysfs sysfs {r}/sys; {trace}mount --rbind /dev {r}/dev; "
        f"exec chroot {r} /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "
        f"TERM=dumb {extra} /bin/sh -c {shlex.quote(script)}"
    )
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", wrapper],
                          capture_output=True, text=True, timeout=timeout)


@dataclass(frozen=True)
class Release:
    """One Debian root with the package installed."""

    suite: str
    """The Debian suite (bookworm, trixie)."""
    root: Path
    """The root's directory on the host."""
    pure: subprocess.CompletedProcess[str]
    """The pure part of the test suite, run in the root right after it was made (both roots at
    once, so the slowest part of this module overlaps with the other root's)."""
    readme: tuple[tuple[str, subprocess.CompletedProcess[str]], ...]
    """README_ROOT only: each README install command and what it gave, run in a pristine copy
    of the freshly bootstrapped root, beside this root's install and pure suite."""


def _make_root(suite: str, root: Path, deb: Path, mirror: str) -> Release:
    boot = subprocess.run(
        ["unshare", "--mount", "--propagation", "private",
         "debootstrap", "--variant=minbase", suite, str(root), mirror],
        capture_output=True, text=True, timeout=900,
    )
    assert boot.returncode == 0, f"debootstrap {suite}: {boot.stdout[-2000:]}{boot.stderr[-2000:]}"
    with ThreadPoolExecutor(1) as pool:
        readme = None
        if suite == README_ROOT:
            # A pristine copy for the README's commands, so they meet a fresh Debian 12 (no
            # fsyncprobe, no python3-click yet), and run beside this root's install and suite.
            fresh = root.with_name(f"{root.name}-readme")
            subprocess.run(["cp", "-a", str(root), str(fresh)], check=True)
            readme = pool.submit(_readme_install, fresh)
        shutil.copy(deb, root / "tmp" / deb.name)
        install = in_chroot(root, (
            "export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && "
            f"apt-get install -y -qq --no-install-recommends /tmp/{deb.name} {' '.join(CHROOT_PACKAGES)}"
        ))
        assert install.returncode == 0, f"apt install in {suite}: {install.stdout[-3000:]}{install.stderr[-3000:]}"
        pure = _pure_suite(root)
        return Release(suite=suite, root=root, pure=pure, readme=readme.result() if readme else ())


def _pure_suite(root: Path) -> subprocess.CompletedProcess[str]:
    """Run PURE_TESTS in `root` on its system Python, against the installed package (the suite's
    `fsyncprobe` and `profiles` are links to what the package installed). Without hypothesis's
    per-example deadline: see below."""
    suite_dir = root / "tmp" / "suite"
    shutil.copytree(ROOT / "tests", suite_dir / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    (suite_dir / "fsyncprobe").symlink_to("/usr/lib/python3/dist-packages/fsyncprobe")
    (suite_dir / "profiles").symlink_to("fsyncprobe/verdict/profiles")
    (suite_dir / "pytest.ini").write_text("[pytest]\nmarkers =\n    root: needs root\n    slow: slow\n")
    # The two roots' suites and the README's commands share the machine: a wall-clock deadline
    # per example would measure the neighbours, not the code (hypothesis's `deadline` setting).
    (suite_dir / "conftest.py").write_text(
        "from hypothesis import settings\n"
        "settings.register_profile('shared', deadline=None)\nsettings.load_profile('shared')\n"
    )
    files = " ".join(f"tests/{f}" for f in PURE_TESTS)
    # As an unprivileged user: the few tests of these files that build a loop device skip with
    # their "needs root" reason (they run in the main suite), and nothing can touch the host.
    return in_chroot(root, (
        "chown -R nobody:nogroup /tmp/suite && cd /tmp/suite && HOME=/tmp/suite "
        f"setpriv --reuid=nobody --regid=nogroup --clear-groups python3 -m pytest -q -rfs -p no:cacheprovider {files}"
    ), timeout=900)


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make deb`, into a private directory."""
    dist = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(["make", "-C", str(ROOT), "deb", f"DIST={dist}"], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    debs = sorted(dist.glob("fsyncprobe_*_all.deb"))
    assert [d.name for d in debs] == [f"fsyncprobe_{pyproject_version()}_all.deb"]
    return debs[0]


@pytest.fixture(scope="module")
def releases(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Release]]:
    """Both roots, made in parallel, the package installed; removed afterwards."""
    base = tmp_path_factory.mktemp("roots")
    mirror = debian_mirror()
    with ThreadPoolExecutor(len(RELEASES)) as pool:
        futures = {s: pool.submit(_make_root, s, base / s, deb, mirror) for s in RELEASES}
        made = {s: f.result() for s, f in futures.items()}
    yield made
    # Nothing is mounted in the roots on the host (each mount lived in its namespace), so a plain
    # removal cannot cross into /proc, /sys or /dev.
    shutil.rmtree(base, ignore_errors=True)


def test_deb_metadata(deb: Path) -> None:
    """The .deb depends on Debian's libraries, suggests corosync, carries the man page, the bash
    completion, the profiles and the JSON Schema, and has pyproject.toml's version."""
    info = subprocess.run(["dpkg-deb", "--field", str(deb), "Version", "Depends", "Suggests", "Architecture"],
                          capture_output=True, text=True, check=True).stdout
    fields = dict(line.split(": ", 1) for line in info.strip().splitlines())
    assert fields["Version"] == pyproject_version()
    assert fields["Architecture"] == "all"
    depends = {d.strip().split(" ")[0] for d in fields["Depends"].split(",")}
    assert {"python3-click", "python3-rich", "python3-psutil", "python3-pyudev", "python3-tabulate"} <= depends
    assert "corosync" in fields["Suggests"]
    files = subprocess.run(["dpkg-deb", "--contents", str(deb)], capture_output=True, text=True, check=True).stdout
    for path in ("./usr/bin/fsyncprobe", "./usr/share/man/man1/fsyncprobe.1.gz",
                 "./usr/share/bash-completion/completions/fsyncprobe",
                 "/fsyncprobe/report/schema.json", "/fsyncprobe/verdict/profiles/pmxcfs.toml"):
        assert path in files, path
    shipped = {p.name for p in (ROOT / "fsyncprobe" / "verdict" / "profiles").glob("*.toml")}
    assert shipped == set(re.findall(r"/fsyncprobe/verdict/profiles/([^/\s]+\.toml)", files))


def test_one_version() -> None:
    """pyproject.toml's version is the one debian/changelog builds, and the newest release that
    CHANGELOG.md names, if it names one yet."""
    version = pyproject_version()
    assert fsyncprobe.__version__ == version
    changelog = (ROOT / "debian" / "changelog").read_text(encoding="utf-8")
    assert changelog.startswith(f"fsyncprobe ({version}) ")
    released = re.findall(r"^## \[(\d[^\]]*)\]", (ROOT / "CHANGELOG.md").read_text(encoding="utf-8"), re.M)
    assert not released or released[0] == version


@pytest.mark.parametrize("suite", RELEASES)
def test_commands_in_clean_root(releases: dict[str, Release], suite: str) -> None:
    """In the clean root: --version, device /, bench and verdict on /var/tmp exit as documented,
    and the JSON reports validate against the JSON Schema the package installed."""
    rel = releases[suite]
    version = in_chroot(rel.root, "fsyncprobe --version; dpkg-query -W -f '${Version}\\n' fsyncprobe")
    assert version.returncode == 0, version.stderr
    assert version.stdout.split("\n")[:2] == [f"fsyncprobe, version {pyproject_version()}", pyproject_version()]

    table = in_chroot(rel.root, "fsyncprobe device /")
    assert table.returncode == 0 and "Traceback" not in table.stderr, table.stderr
    device = in_chroot(rel.root, "fsyncprobe device / --json")
    assert device.returncode == 0, device.stderr
    found = json.loads(device.stdout)["device"]
    assert found["path"] == "/" and found["leaves"], found
    assert found["leaves"][0]["name"] in table.stdout

    schema_path = next(rel.root.glob("usr/lib/python3/dist-packages/fsyncprobe/report/schema.json"))
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    bench = in_chroot(rel.root, "fsyncprobe bench /var/tmp --duration 1s --json --no-progress")
    assert bench.returncode == 0, bench.stderr
    assert "Traceback" not in bench.stderr
    report: dict[str, Any] = json.loads(bench.stdout)
    jsonschema.validate(report, schema)
    run = report["benches"][0]
    assert run["ops"] > 0 and report["tool_version"] == pyproject_version()
    # mountinfo in the chroot lists no mount holding /var/tmp; the st_dev/statfs fallback must
    # find the filesystem the root lives on, as the host's mountinfo names it.
    host = mount_of(str(rel.root / "var" / "tmp"))
    assert (run["mountpoint"], run["fstype"]) == ("/", host.fstype)
    assert report["device"]["mount"]["major_minor"] == host.major_minor

    verdict = in_chroot(rel.root, "fsyncprobe verdict /var/tmp --duration 1s --json --no-progress")
    assert "Traceback" not in verdict.stderr, verdict.stderr
    report = json.loads(verdict.stdout)
    jsonschema.validate(report, schema)
    assert verdict.returncode == verdict_exit_code(report["verdict"]["level"]), verdict.stderr

    bad = in_chroot(rel.root, "fsyncprobe bench /var/tmp --duration 0s; echo rc=$?")
    assert "Traceback" not in bad.stderr
    assert bad.stderr.startswith("fsyncprobe: error: ") and bad.stdout.strip() == "rc=2", bad.stderr
    bare = in_chroot(rel.root, "fsyncprobe")
    assert "Traceback" not in bare.stderr and "verdict" in bare.stdout + bare.stderr


WATCH_IN_ROOT = r"""
cp /usr/bin/python3 /tmp/fspw
/tmp/fspw -c "
import os, time
while not os.path.exists('/tmp/go'): time.sleep(0.05)
fd = os.open('/tmp/data', os.O_WRONLY | os.O_CREAT, 0o600)
for _ in range(20): os.write(fd, b'x' * 4096); os.fdatasync(fd)
open('/tmp/done', 'w').close()
while not os.path.exists('/tmp/stop'): time.sleep(0.05)
" &
W=$!
fsyncprobe watch -p fspw --interval 1s --json -o /tmp/w.json 2>/tmp/w.err &
F=$!
i=0
until grep -q attached /tmp/w.err; do
  sleep 0.2; i=$((i+1))
  if [ $i -gt 600 ]; then kill $F $W; cat /tmp/w.err >&2; exit 9; fi
done
touch /tmp/go
until [ -e /tmp/done ]; do sleep 0.1; done
sleep 1.5
# SIGTERM, not SIGINT: a non-interactive shell starts background jobs with SIGINT ignored (POSIX, 2.11)
kill -TERM $F; rc=0; wait $F || rc=$?
touch /tmp/stop; wait $W
cat /tmp/w.err >&2
bpftrace --version
echo "rc=$rc"
"""


def test_watch_with_debian_13_s_bpftrace(releases: dict[str, Release]) -> None:
    """`watch` with the bpftrace Debian 13 ships (0.23; the host's suite runs Debian 12's 0.17):
    installed from trixie into the clean root, run on this kernel, every fdatasync and write of
    a process of our own counted exactly, no note that the version is untested."""
    root = releases["trixie"].root
    install = in_chroot(root, "export DEBIAN_FRONTEND=noninteractive; "
                              "apt-get install -y -qq --no-install-recommends bpftrace >/dev/null")
    assert install.returncode == 0, install.stderr[-3000:]
    proc = in_chroot(root, WATCH_IN_ROOT, timeout=300, tracefs=True)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("rc=0"), proc.stdout + proc.stderr
    version = re.search(r"bpftrace v(\d+)\.(\d+)", proc.stdout)
    assert version is not None and (int(version[1]), int(version[2])) >= (0, 23), proc.stdout
    watched = json.loads((root / "tmp" / "w.json").read_text())["watch"]
    assert watched["bpftrace_version"].startswith(f"bpftrace v{version[1]}.{version[2]}")
    assert not any("newer than" in n for n in watched["notes"]), watched["notes"]
    (p,) = watched["processes"]
    counts = {c["kind"]: c["latency"]["count"] for c in p["calls"]}
    assert counts["fdatasync"] == 20 and counts["write"] == 20, counts


@pytest.mark.parametrize("suite", RELEASES)
def test_man_page_and_completion(releases: dict[str, Release], suite: str) -> None:
    """The installed man page names every command and renders without warnings (man -l); the
    bash completion (click's) completes a command name."""
    rel = releases[suite]
    page_path = rel.root / "usr/share/man/man1/fsyncprobe.1.gz"
    page = gzip.decompress(page_path.read_bytes()).decode()
    ctx = click.Context(main)
    commands = [c for c in main.list_commands(ctx) if not getattr(main.get_command(ctx, c), "hidden", True)]
    assert {"bench", "device", "model", "verdict", "cluster"} <= set(commands)
    for command in commands:
        assert f".SS fsyncprobe {command} " in page, command
    rendered = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", str(page_path)], capture_output=True,
                              text=True, env={"MANWIDTH": "100", "PATH": "/usr/bin:/bin", "MAN_KEEP_FORMATTING": ""})
    assert rendered.returncode == 0 and not rendered.stderr.strip(), rendered.stderr
    assert "fsyncprobe verdict" in rendered.stdout
    complete = in_chroot(rel.root, (
        "exec bash -c '. /usr/share/bash-completion/completions/fsyncprobe; "
        # bash calls the function with the command, the word and the previous word (bash(1), "complete -F")
        "COMP_WORDS=(fsyncprobe ver); COMP_CWORD=1; _fsyncprobe_completion fsyncprobe ver fsyncprobe; "
        "echo \"${COMPREPLY[@]}\"'"
    ))
    assert complete.returncode == 0, complete.stderr
    assert "verdict" in complete.stdout.split(), complete.stdout


@pytest.mark.parametrize("suite", RELEASES)
def test_pure_suite_on_debian_python(releases: dict[str, Release], suite: str) -> None:
    """The pure tests pass on the root's system Python with Debian's libraries, python3-pytest,
    -hypothesis and -jsonschema, and the installed package."""
    proc = releases[suite].pure
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert re.search(r"\d+ passed", proc.stdout)
    skips = [line for line in proc.stdout.splitlines() if line.startswith("SKIPPED")]
    assert all("needs root" in line for line in skips), skips


def readme_install_commands() -> list[str]:
    """The shell lines of the README's Install section, in order (comments dropped)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Install\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```sh\n(.*?)^```", section, re.M | re.S)
    return [line.split("  #")[0].strip() for block in blocks for line in block.splitlines() if line.strip()]


def _readme_install(root: Path) -> tuple[tuple[str, subprocess.CompletedProcess[str]], ...]:
    """Run the README's install commands, as root, in a copy of the checkout at /tmp/src of a
    fresh root."""
    src = root / "tmp" / "src"
    tree = subprocess.run(["tar", "-C", str(ROOT), "-cf", "-", "--exclude=./.git", "--exclude=./dist",
                           "--exclude=__pycache__", "."], capture_output=True, check=True).stdout
    src.mkdir()
    subprocess.run(["tar", "-C", str(src), "-xf", "-"], input=tree, check=True)
    # pip in the root must trust what the host's pip trusts (CI may reach PyPI through a proxy
    # whose CA only the host's bundle has); the root's own bundle is left alone.
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    host_ca = Path("/etc/ssl/certs/ca-certificates.crt")
    if host_ca.is_file():
        shutil.copy(host_ca, root / "etc" / "host-ca-certificates.crt")
        env["PIP_CERT"] = "/etc/host-ca-certificates.crt"
    out = []
    for command in readme_install_commands():
        out.append((command, in_chroot(root, f"cd /tmp/src && {command}", env=env, timeout=900)))
        if out[-1][1].returncode not in (0, 1):
            break
    for command in ("/root/.local/bin/fsyncprobe", "/usr/local/bin/fsyncprobe", "/usr/bin/fsyncprobe"):
        out.append((command, in_chroot(root, f"{command} --version")))
    return tuple(out)


def test_readme_install_commands(releases: dict[str, Release]) -> None:
    """Every install command of the README works as root on a fresh Debian 12, in a checkout:
    build dependencies, `make deb`, `apt install`, `fsyncprobe verdict`, pipx and the virtual
    environment; the command each installs has pyproject.toml's version."""
    commands = readme_install_commands()
    assert any("make deb" in c for c in commands) and any("pipx install ." in c for c in commands)
    ran = dict(releases[README_ROOT].readme)
    for command in commands:
        assert command in ran, f"{command}: not run (an earlier one failed)"
        proc = ran[command]
        if command.endswith("fsyncprobe verdict"):
            level = re.search(r"VERDICT: (PASS|WARN|FAIL)", proc.stdout)
            assert level and proc.returncode == verdict_exit_code(level.group(1).lower()), proc.stderr[-2000:]
        else:
            assert proc.returncode == 0, f"{command}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
    for command in ("/root/.local/bin/fsyncprobe", "/usr/local/bin/fsyncprobe", "/usr/bin/fsyncprobe"):
        assert ran[command].stdout.strip() == f"fsyncprobe, version {pyproject_version()}", ran[command].stderr
