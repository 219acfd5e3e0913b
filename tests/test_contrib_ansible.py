"""contrib/ansible/collect.yml really runs: against localhost with Debian's ansible-core (local connection).

It measures a private temp dir (short durations), fetches the report and runs `fsyncprobe cluster`
over the fetched directory, as it would over a real cluster's nodes.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PLAYBOOK = Path(__file__).resolve().parent.parent / "contrib" / "ansible" / "collect.yml"


@pytest.mark.slow
def test_collect_playbook_against_localhost(tmp_path: Path) -> None:
    playbook = shutil.which("ansible-playbook")
    if playbook is None:
        pytest.skip("ansible-playbook not installed (tools/test.sh installs Debian's ansible-core)")
    work = tmp_path / "work"
    work.mkdir()
    node_tmp = tmp_path / "node-tmp"  # where the node's report file is made (TMPDIR), checked after
    node_tmp.mkdir()
    out = tmp_path / "reports"
    fp = f"{shlex.quote(sys.executable)} -m fsyncprobe"

    def run_playbook(args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-local"),
               "ANSIBLE_REMOTE_TEMP": str(tmp_path / "ansible-remote"), "ANSIBLE_RETRY_FILES_ENABLED": "0",
               "PYTHONPATH": str(PLAYBOOK.parent.parent.parent), "TMPDIR": str(node_tmp)}
        return subprocess.run(
            [playbook, "-i", "localhost,", "-c", "local", str(PLAYBOOK), "-e", json.dumps(
                {"target": "localhost", "fsyncprobe": fp, "local_fsyncprobe": fp, "fsyncprobe_args": args,
                 "dest": str(out)})],
            capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path,
        )

    # A node where verdict cannot run (a usage error, exit 2) fails, and leaves no report file.
    failed = run_playbook(f"{shlex.quote(str(work))} --duration 0s")
    assert failed.returncode != 0 and "failed=1" in failed.stdout, failed.stdout[-2000:]
    assert not list(node_tmp.glob("*.fsyncprobe.json")), "a failed run left its report file on the node"

    proc = run_playbook(f"{shlex.quote(str(work))} --duration 300ms --warmup 0s --no-corosync-conf")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert not list(node_tmp.glob("*.fsyncprobe.json")), "the report file was left on the node"
    assert "failed=0" in proc.stdout
    report = json.loads((out / "localhost.json").read_text())
    assert report["command"] == "verdict"
    assert report["path"] == str(work)
    assert report["verdict"]["level"] in ("pass", "warn", "fail")
    cluster_md = (out / "cluster.md").read_text()
    assert "cluster" in cluster_md and report["hostname"] in cluster_md
    assert not list(work.iterdir()), "the verdict left files in the measured directory"
