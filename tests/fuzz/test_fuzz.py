"""The bounded fuzz run of the readers (FASTRNN_FUZZ_INPUTS inputs, 2000 by default:
a few seconds), and the harness itself shown to catch a crash, a hang and memory
beyond the limit. The long campaign: python -m tests.fuzz --minutes 60 (docs/reliability.md)."""
import os
import textwrap

from . import runner


def test_readers_load_or_refuse_every_mutated_checkpoint(tmp_path):
    inputs = int(os.environ.get("FASTRNN_FUZZ_INPUTS", "2000"))
    counts, failures = runner.run(inputs=inputs, seed=int(os.environ.get("FASTRNN_FUZZ_SEED", 0)),
                                  out=str(tmp_path / "failures"))
    assert not failures, "\n".join(f"input {i} ({name}, {how}): {verdict}"
                                   for i, name, how, verdict, _ in failures[:20])
    assert sum(counts.values()) == inputs
    # the mutations reach past the first checks: some inputs still load and run
    assert counts["LOADED"] > inputs // 20 and counts["REFUSED"] > inputs // 2


def test_seeds_all_load(tmp_path):
    paths = [os.path.join(runner.SEEDS, n) for n, _ in runner.load_seeds()]
    assert len(paths) >= 10
    assert [v for _, v in runner.replay(paths)] == ["LOADED"] * len(paths)


FAKE_WORKER = textwrap.dedent("""
    import ctypes, resource, sys, time
    headroom = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (int(open("/proc/self/statm").read().split()[0])
                                            * resource.getpagesize() + headroom,
                                            resource.RLIM_INFINITY))
    print("READY", flush=True)
    for line in sys.stdin:
        if "crash" in line:
            ctypes.string_at(0)
        if "hang" in line:
            time.sleep(60)
        try:
            if "memory" in line:
                bytearray(1 << 32)
        except MemoryError:
            print("FAIL MemoryError", flush=True)
            continue
        print("REFUSED", flush=True)
""")


def test_harness_sees_crashes_hangs_and_memory(tmp_path, monkeypatch):
    script = tmp_path / "fake_worker.py"
    script.write_text(FAKE_WORKER)
    monkeypatch.setattr(runner.Worker, "script", str(script))
    for name in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS"):  # its crash is planted
        monkeypatch.delenv(name, raising=False)
    worker = runner.Worker(headroom=256 << 20)
    try:
        assert worker.check("fine") == "REFUSED"
        assert worker.check("crash").startswith("FAIL crash (signal 11)")
        assert worker.check("fine") == "REFUSED"  # a new worker
        assert worker.check("hang", timeout=1.0) == "FAIL hang (no answer in 1 s)"
        assert worker.check("memory") == "FAIL MemoryError"
    finally:
        worker.close()
