"""A container's CPU limit (a cgroup CPU quota) read from /proc and the cgroup files,
and split calls run alone under a quota of less than 2 CPUs: the affinity such a
container gives (all of the host's CPUs) does not show it."""
import os

import pytest
from helpers import helper_threads_started

from fastrnn import _threads


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def _tree(tmp_path, cgroup, mountinfo, files):
    proc = tmp_path / "proc"
    _write(str(proc / "cgroup"), cgroup)
    _write(str(proc / "mountinfo"), mountinfo)
    for rel, text in files.items():
        _write(str(tmp_path / "root") + rel, text)
    return str(proc), str(tmp_path / "root")


V2_MOUNT = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
V1_MOUNTS = ("31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755\n"
             "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
             "33 31 0:30 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n")


def test_v2_the_smallest_quota_of_the_group_and_its_parents(tmp_path):
    proc, root = _tree(tmp_path, "0::/kubepods/pod1/ctr\n", V2_MOUNT, {
        "/sys/fs/cgroup/kubepods/pod1/ctr/cpu.max": "max 100000\n",
        "/sys/fs/cgroup/kubepods/pod1/cpu.max": "150000 100000\n",
        "/sys/fs/cgroup/kubepods/cpu.max": "400000 100000\n",
        "/sys/fs/cgroup/cpu.max": "max 100000\n",
    })
    assert _threads.cpu_quota(proc, root) == 1.5


def test_v2_no_limit_anywhere(tmp_path):
    proc, root = _tree(tmp_path, "0::/user.slice\n", V2_MOUNT, {
        "/sys/fs/cgroup/user.slice/cpu.max": "max 100000\n"})
    assert _threads.cpu_quota(proc, root) is None


def test_v2_inside_a_cgroup_namespace(tmp_path):
    """A container's own namespace: its group is the mount's root."""
    proc, root = _tree(tmp_path, "0::/\n",
                       "30 23 0:26 /kubepods/pod1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
                       {"/sys/fs/cgroup/cpu.max": "50000 100000\n"})
    assert _threads.cpu_quota(proc, root) == 0.5


def test_v1_cpu_controller(tmp_path):
    proc, root = _tree(tmp_path, "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n",
                       V1_MOUNTS, {
                           "/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "100000\n",
                           "/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n",
                           "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "-1\n",
                           "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n",
                       })
    assert _threads.cpu_quota(proc, root) == 1.0


@pytest.mark.parametrize("text", ["", "max", "abc 100000", "100000 0", "-5 100000",
                                  "1e9 100000 extra"])
def test_unreadable_quotas_are_no_quota(tmp_path, text):
    proc, root = _tree(tmp_path, "0::/a\n", V2_MOUNT, {"/sys/fs/cgroup/a/cpu.max": text})
    assert _threads.cpu_quota(proc, root) is None


def test_no_proc_files(tmp_path):
    assert _threads.cpu_quota(str(tmp_path / "absent"), str(tmp_path)) is None
    proc, root = _tree(tmp_path, "garbage\n\n0\n", "nonsense line\n", {})
    assert _threads.cpu_quota(proc, root) is None


def test_this_machine_reads_without_error():
    quota = _threads.cpu_quota()
    assert quota is None or quota > 0


def test_under_a_quota_below_two_cpus_split_calls_run_alone():
    """Two threads asked for under a 1-CPU quota: no helper thread starts and the
    results are one core's; the quota lifted, the same call starts it."""
    code = """if True:
        import os, numpy as np, fastrnn
        from fastrnn import _threads
        from fastrnn._kernels import _stack
        m = fastrnn.LSTM(8, 256)
        m.plan = fastrnn.Plan.default().replace(fused=True, fused_max_batch=64,
                                                split_min_hidden=0)
        x = np.ones((20, 1, 8), np.float32)
        one = m(x)[0]
        tasks = len(os.listdir("/proc/self/task"))
        _threads.cpu_quota = lambda: 1.0      # as a container limited to 1 CPU
        fastrnn.set_num_threads(2, blas=1)
        two = m(x)[0]
        assert len(os.listdir("/proc/self/task")) == tasks, "a helper thread started"
        assert (one == two).all()
        _threads.cpu_quota = lambda: 2.0
        fastrnn.set_num_threads(2, blas=1)
        m(x)
        print(len(os.listdir("/proc/self/task")) - tasks)
    """
    helper_threads_started(code)


def test_info_shows_the_quota_and_the_split_run_alone():
    from fastrnn import _info

    cfg = _info.config()
    cfg["cpu"]["cpu_quota"], cfg["threads"]["kernel_split"] = 1.5, 2
    text = _info.render(cfg)
    assert "a CPU quota of 1.5)" in text and "step split: 2 (run alone" in text
    cfg["cpu"]["cpu_quota"] = 2.0
    text = _info.render(cfg)
    assert "a CPU quota of 2)" in text and "run alone" not in text
    assert _threads.quota_runs_alone(1.99) and not _threads.quota_runs_alone(None)


def test_usable_cpus_is_the_affinity_that_info_and_tune_count(monkeypatch):
    from fastrnn import _info, _tune

    assert _threads.usable_cpus() == len(os.sched_getaffinity(0))
    assert _info.config()["cpu"]["usable_cores"] == _threads.usable_cpus()
    monkeypatch.setattr(_threads, "cpu_quota", lambda *a, **k: None)
    assert _tune.cores() == _threads.usable_cpus()
    monkeypatch.setattr(_threads, "cpu_quota", lambda *a, **k: 1.5)
    assert _tune.cores() == 1
    monkeypatch.delattr(os, "sched_getaffinity")
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert _threads.usable_cpus() == 1
