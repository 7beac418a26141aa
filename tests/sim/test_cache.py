"""The build cache checks itself: manifests, killed builds, unusable cache folders."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from accelkit.sim import toolchain
from accelkit.sim.toolchain import MANIFEST, cached_build, elf_complete, manifest_problem


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ACCELKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(toolchain, "_private_cache", None)
    return tmp_path / "cache"


def _builder(counter, payload=b"x" * 4096):
    def build(work):
        counter.append(1)
        (work / "libaccelkit.so").write_bytes(payload)
    return build


def test_entry_carries_a_manifest_and_is_reused(cache):
    builds = []
    first = cached_build("fake", "k", _builder(builds))
    assert (first / MANIFEST).exists() and manifest_problem(first) is None
    assert cached_build("fake", "k", _builder(builds)) == first and len(builds) == 1


def test_truncated_library_is_rebuilt(cache, capsys):
    builds = []
    entry = cached_build("fake", "k", _builder(builds))
    os.truncate(entry / "libaccelkit.so", 100)      # what crashed with SIGBUS when it was loaded
    assert "libaccelkit.so is 100 bytes, the manifest says 4096" in manifest_problem(entry)
    again = cached_build("fake", "k", _builder(builds))
    assert len(builds) == 2 and (again / "libaccelkit.so").stat().st_size == 4096
    assert "is damaged (libaccelkit.so is 100 bytes" in capsys.readouterr().err
    assert sorted(p.name for p in (cache / "fake").iterdir()) == ["k", "k.lock"]


def test_changed_file_is_rebuilt(cache):
    builds = []
    entry = cached_build("fake", "k", _builder(builds))
    (entry / "libaccelkit.so").write_bytes(b"y" * 4096)
    assert "does not match its SHA-256" in manifest_problem(entry)
    cached_build("fake", "k", _builder(builds))
    assert len(builds) == 2


def test_entries_from_before_manifests_are_adopted_unless_cut_short(cache, tmp_path):
    library = tmp_path / "lib.so"
    library.write_bytes(open(sys.executable, "rb").read())      # a complete ELF file
    assert elf_complete(library)
    for key, size in (("whole", None), ("cut", 2000)):
        entry = cache / "fake" / key
        entry.mkdir(parents=True)
        data = library.read_bytes()
        (entry / "libaccelkit.so").write_bytes(data[:size] if size else data)
    builds = []
    cached_build("fake", "whole", _builder(builds))
    assert builds == [] and manifest_problem(cache / "fake" / "whole") is None
    cached_build("fake", "cut", _builder(builds))
    assert builds == [1]


def test_kill_9_during_a_build_then_the_same_command_rebuilds_cleanly(cache):
    script = textwrap.dedent("""
        import sys, time
        from accelkit.sim.toolchain import cached_build
        def build(work):
            (work / "libaccelkit.so").write_bytes(b"z" * 1000)
            print("building", flush=True)
            time.sleep(float(sys.argv[1]))
        print(cached_build("fake", "k", build), flush=True)
    """)
    env = {**os.environ, "ACCELKIT_CACHE": str(cache)}
    slow = subprocess.Popen([sys.executable, "-c", script, "60"], stdout=subprocess.PIPE, text=True, env=env)
    assert slow.stdout.readline().strip() == "building"
    leftovers = [p.name for p in (cache / "fake").iterdir() if ".build." in p.name]
    assert leftovers, "the build folder should exist while the build runs"
    slow.send_signal(signal.SIGKILL)
    slow.wait()
    done = subprocess.run([sys.executable, "-c", script, "0"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (cache / "fake").iterdir()) == ["k", "k.lock"]
    assert manifest_problem(cache / "fake" / "k") is None


@pytest.mark.parametrize("kind", ["file", "unwritable"])
def test_unusable_cache_falls_back_to_a_private_one(tmp_path, monkeypatch, capsys, kind):
    if kind == "file":
        target = tmp_path / "a-file"
        target.write_text("")
    else:
        target = "/proc/accelkit-cache"          # cannot be created, even by root
    monkeypatch.setenv("ACCELKIT_CACHE", str(target))
    monkeypatch.setattr(toolchain, "_private_cache", None)
    root = toolchain.cache_root()
    assert root != target and root.is_dir() and os.access(root, os.W_OK)
    err = capsys.readouterr().err
    assert f"the build cache '{target}' is unusable" in err and "private temporary cache" in err
    builds = []
    assert cached_build("fake", "k", _builder(builds)).parent.parent == root


def test_a_killed_tool_runs_scratch_folder_is_removed_by_the_next_run(tmp_path, monkeypatch):
    # synthesis and place-and-route work in a scratch folder (tens of MB); kill -9 skips its cleanup
    monkeypatch.setattr(toolchain.tempfile, "tempdir", str(tmp_path))
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import sys, time
        from accelkit.sim.toolchain import scratch_dir
        with scratch_dir("ecp5") as work:
            print(work, flush=True)
            time.sleep(600)
        """)], stdout=subprocess.PIPE, text=True, env={**os.environ, "TMPDIR": str(tmp_path)})
    abandoned = child.stdout.readline().strip()
    with toolchain.scratch_dir("ecp5") as live:                  # its owner is alive: left alone
        assert os.path.isdir(abandoned) and os.path.isdir(live)
    child.send_signal(signal.SIGKILL)
    child.wait()
    with toolchain.scratch_dir("ecp5") as work:
        assert not os.path.exists(abandoned) and os.path.isdir(work)
    assert not os.path.exists(work) and not os.path.exists(live)
