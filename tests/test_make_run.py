"""What `make run` (scripts/run.sh) sets up: its data directory and development key, readable
by their owner alone (scripts/private_data.sh; issue 10 found the key world-readable), and a
Redis that fsyncs every write before it answers (issue 10: everysec could lose a second)."""

from __future__ import annotations

import re
import stat
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).parent.parent / "scripts" / "private_data.sh"


def _run(*args: str | Path) -> str:
    done = subprocess.run([SCRIPT, *args], capture_output=True, text=True, check=True)
    return done.stdout


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_data_directory_and_key_are_made_private(tmp_path: Path) -> None:
    data = tmp_path / ".data"
    key = _run(data, "--key").strip()
    assert len(key) == 48 and int(key, 16) >= 0  # 24 random bytes in hex
    assert (data / "dev-api-key").read_text().strip() == key
    assert (_mode(data), _mode(data / "dev-api-key")) == (0o700, 0o600)
    assert _run(data, "--key").strip() == key  # made once


def test_modes_left_loose_by_an_earlier_release_are_tightened(tmp_path: Path) -> None:
    data = tmp_path / ".data"
    data.mkdir(mode=0o755)
    (data / "dev-api-key").write_text("an-earlier-key-0123456789\n")
    (data / "dev-api-key").chmod(0o644)
    assert _run(data) == ""  # without --key: the directory alone
    assert (_mode(data), _mode(data / "dev-api-key")) == (0o700, 0o644)
    assert _run(data, "--key").strip() == "an-earlier-key-0123456789"
    assert _mode(data / "dev-api-key") == 0o600


RUN = (SCRIPT.parent / "run.sh").read_text()


def test_make_run_uses_it() -> None:
    assert "scripts/private_data.sh .data\n" in RUN
    assert 'ADMIN_API_KEYS="$(scripts/private_data.sh .data --key)"' in RUN


def test_make_runs_redis_fsyncs_every_write() -> None:
    [started] = re.findall(r"^ *redis-server (?:.*\\\n)*.*$", RUN, re.M)
    options = started.split()
    assert options[options.index("--appendonly") + 1] == "yes"
    assert options[options.index("--appendfsync") + 1] == "always"
