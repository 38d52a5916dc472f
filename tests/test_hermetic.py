"""The hermetic test run (root conftest.py, tests/hermetic/): network guard in every process, caches in temp folders."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import conftest

ROOT = Path(__file__).resolve().parent.parent
guard = conftest.netguard()

# Never resolved or contacted: the guard refuses them before anything leaves the process.
REMOTE_NAME = "example.com"
REMOTE_ADDRESS = "93.184.215.14"  # a public address; no lookup needed to try it


@pytest.fixture
def own_log(tmp_path):
    """Refused attempts of the test go to a log of its own, so the run's log (which fails the run) stays clean."""
    log = tmp_path / "netguard.log"
    with guard.logging_to(log):
        yield log


def loopback_echo(host: str) -> bytes:
    """Send a few bytes over TCP to a server on ``host`` in this process and return what arrived."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as server:
        server.bind((host, 0))
        server.listen()
        with socket.create_connection((host, server.getsockname()[1]), timeout=5) as client:
            connection, _ = server.accept()
            with connection:
                client.sendall(b"ping")
                return connection.recv(4)


def python_env(log: Path) -> dict[str, str]:
    """The environment the test run gives its subprocesses, with the guard logging to ``log``."""
    return {**os.environ, guard.LOG_ENV: str(log)}


def test_the_run_guards_this_process_with_one_log_in_the_run_folder():
    log = os.environ[conftest.LOG_ENV]
    assert guard.active_log() == log
    assert Path(log).parent == Path(os.environ[conftest.RUN_DIR_ENV])
    assert sys.modules["course_netguard"] is guard  # the module sitecustomize.py imported, when it ran here


def test_a_name_lookup_is_refused_at_once_and_logged(own_log):
    with pytest.raises(socket.gaierror, match="refused by the test suite's guard.*'example.com' port 80"):
        socket.getaddrinfo(REMOTE_NAME, 80)
    with pytest.raises(OSError, match="refused"):
        socket.gethostbyname(REMOTE_NAME)
    lines = guard.read_log(own_log)
    assert len(lines) == 2
    assert f"pid={os.getpid()} " in lines[0] and "event=socket.getaddrinfo host='example.com' port 80" in lines[0]
    assert "from=tests/test_hermetic.py:" in lines[0]
    assert "in test_a_name_lookup_is_refused_at_once_and_logged" in lines[0]
    assert "event=socket.gethostbyname host='example.com'" in lines[1]


def test_connections_and_datagrams_to_other_addresses_are_refused_and_logged(own_log):
    with socket.socket() as tcp, pytest.raises(OSError, match="refused") as refused:
        tcp.connect((REMOTE_ADDRESS, 443))
    assert refused.value.errno == 101  # ENETUNREACH: callers treat it as "offline"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, pytest.raises(OSError, match="refused"):
        udp.sendto(b"x", ("8.8.8.8", 53))
    with pytest.raises(urllib.error.URLError, match="refused"):
        urllib.request.urlopen("https://download.pytorch.org/models/x.pth", timeout=5)
    events = [line.split(" event=")[1].split(" from=")[0] for line in guard.read_log(own_log)]
    assert events == [f"socket.connect host='{REMOTE_ADDRESS}' port 443", "socket.sendto host='8.8.8.8' port 53",
                      "urllib.Request host='https://download.pytorch.org/models/x.pth'"]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_loopback_traffic_passes_and_logs_nothing(own_log, host):
    if host == "::1" and not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        assert loopback_echo(host) == b"ping"
    except OSError as error:
        if host == "::1" and "refused by the test suite" not in str(error):
            pytest.skip(f"no IPv6 loopback here: {error}")
        raise
    assert socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)
    assert guard.read_log(own_log) == []


def test_a_lookup_of_this_machines_own_name_is_refused_without_a_log_line(own_log):
    """torchrun asks for socket.getfqdn(); its answer would depend on the machine's DNS."""
    with pytest.raises(socket.gaierror, match="this machine's name"):
        socket.gethostbyaddr(socket.gethostname())
    assert socket.getfqdn() == socket.gethostname()
    assert guard.read_log(own_log) == []


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets")
def test_unix_sockets_pass(own_log):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "s")
        with socket.socket(socket.AF_UNIX) as server, socket.socket(socket.AF_UNIX) as client:
            server.bind(path)
            server.listen()
            client.connect(path)
    assert guard.read_log(own_log) == []


@pytest.mark.parametrize(("host", "local"), [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("::ffff:127.0.0.1", True), ("localhost", True),
    ("LOCALHOST.", True), ("api.localhost", True), (b"localhost", True), ("0.0.0.0", True), ("", True), (None, True),
    ("example.com", False), ("10.0.0.1", False), ("192.168.1.1", False), ("::ffff:8.8.8.8", False),
    ("2001:db8::1", False), ("localhost.example.com", False), ("<broadcast>", False), (80, False),
])
def test_is_loopback(host, local):
    assert guard.is_loopback(host) is local


def test_the_guard_is_off_outside_a_log(tmp_path):
    with guard.logging_to(tmp_path / "log"):
        guard.uninstall()
        assert guard.active_log() is None
        assert loopback_echo("127.0.0.1") == b"ping"  # and nothing is checked now
    assert guard.active_log() == os.environ[conftest.LOG_ENV]  # the run's log again


def test_a_subprocess_of_the_run_is_guarded_too(tmp_path):
    """Jupyter kernels, torchrun workers and `python -m helpers.train` are subprocesses like this one."""
    log = tmp_path / "child.log"
    code = textwrap.dedent("""
        import os, socket, sys
        server = socket.create_server(("127.0.0.1", 0))
        socket.create_connection(server.getsockname(), timeout=5).close()  # loopback works
        print("child", os.getpid(), os.environ["COURSE_OFFLINE"], os.environ["TORCH_HOME"], flush=True)
        socket.create_connection(("example.com", 80), 1)
    """)
    done = subprocess.run([sys.executable, "-c", code], env=python_env(log), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1 and "socket.gaierror" in done.stderr and "refused by the test suite" in done.stderr
    _, pid, offline, torch_home = done.stdout.split()
    assert offline == "1" and torch_home == os.environ["TORCH_HOME"]
    (line,) = guard.read_log(log)
    assert line.startswith(f"pid={pid} process=-c")  # [gw0] follows under xdist
    assert " event=socket.getaddrinfo host='example.com' port 80 from=<string>:6 in <module>" in line


@pytest.mark.notebook
def test_a_jupyter_kernel_started_by_papermill_is_guarded(tmp_path, monkeypatch):
    """papermill and nbval start kernelspec python3 with this process's environment, as here."""
    import nbformat
    import papermill

    log = tmp_path / "kernel.log"
    monkeypatch.setenv(guard.LOG_ENV, str(log))  # the kernel's guard logs here (this process's does not change)
    notebook = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "language": "python",
                                                                 "display_name": "Python 3"}})
    notebook.cells = [nbformat.v4.new_code_cell("import socket\ntry:\n    socket.getaddrinfo('example.com', 443)\n"
                                                "except OSError as error:\n    print(error)")]
    nbformat.write(notebook, tmp_path / "probe.ipynb")
    papermill.execute_notebook(str(tmp_path / "probe.ipynb"), str(tmp_path / "out.ipynb"), kernel_name="python3",
                               progress_bar=False, execution_timeout=60)
    (line,) = guard.read_log(log)
    assert " process=ipykernel_launcher.py" in line and "event=socket.getaddrinfo host='example.com' port 443" in line
    printed = nbformat.read(tmp_path / "out.ipynb", as_version=4).cells[0].outputs[0]["text"]
    assert "refused by the test suite's guard" in printed


def test_a_sitecustomize_further_down_the_path_still_runs(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "sitecustomize.py").write_text("import os\nos.environ['OTHER_SITECUSTOMIZE'] = 'ran'\n")
    env = {**python_env(tmp_path / "log"),
           "PYTHONPATH": os.pathsep.join([os.environ["PYTHONPATH"], str(other)])}
    code = "import os, sys; print(os.environ.get('OTHER_SITECUSTOMIZE'), 'course_netguard' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["ran", "True"], done.stderr


def test_caches_and_configs_point_into_the_run_folder_and_torch_home_is_empty():
    run_dir = Path(os.environ[conftest.RUN_DIR_ENV])
    assert run_dir.is_dir() and run_dir.resolve().is_relative_to(Path(tempfile.gettempdir()).resolve())
    assert not run_dir.resolve().is_relative_to(ROOT)
    for name in [*conftest.HERMETIC_DIRS, "FONTCONFIG_FILE", conftest.LOG_ENV]:
        assert Path(os.environ[name]).resolve().is_relative_to(run_dir.resolve()), name
    assert not [p for p in Path(os.environ["TORCH_HOME"]).rglob("*") if p.is_file()]
    assert os.environ[conftest.OFFLINE_ENV] == "1"
    assert not [name for name in conftest.PROXY_VARS if name in os.environ]
    assert os.environ["PYTHONPATH"].split(os.pathsep)[0] == str(ROOT / "tests" / "hermetic")


def test_the_python3_kernelspec_is_this_environments(tmp_path):
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("python3")
    assert Path(spec.resource_dir).resolve().is_relative_to(Path(sys.prefix).resolve())
    assert os.environ["JUPYTER_DATA_DIR"] not in spec.resource_dir


def test_a_run_with_a_refused_attempt_fails_and_says_where(tmp_path):
    """A pytest run (with an xdist worker) whose test swallows the error still fails at the end."""
    (tmp_path / "test_online.py").write_text(textwrap.dedent("""
        import os, pathlib, socket

        def test_swallows_the_error():
            pathlib.Path(__file__).with_name("run_dir.txt").write_text(os.environ["COURSE_TEST_RUN_DIR"])
            try:
                socket.getaddrinfo("example.com", 80)
            except OSError:
                pass
    """))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ["PYTHONPATH"]]),
           "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}  # only the plugins named below: seconds faster
    command = [sys.executable, "-m", "pytest", "-q", "-p", "conftest", "-p", "xdist.plugin", "-p", "no:cacheprovider",
               "-n", "1", "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path)]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 passed" in done.stdout
    assert "network access refused (the suite must run offline)" in done.stdout
    assert (f"process=-c[gw0] event=socket.getaddrinfo host='example.com' port 80 "
            f"from={tmp_path / 'test_online.py'}:") in done.stdout
    inner_run_dir = (tmp_path / "run_dir.txt").read_text()
    assert inner_run_dir != os.environ[conftest.RUN_DIR_ENV]
    assert not Path(inner_run_dir).exists()  # removed at the end of the run
    assert guard.read_log(os.environ[conftest.LOG_ENV]) == []  # the inner run had a log of its own


def test_checkout_check_sees_a_file_written_rewritten_or_removed_under_runs_or_data(tmp_path):
    import importlib.util

    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("root_conftest", root / "conftest.py")
    root_conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(root_conftest)
    (tmp_path / "runs" / "03_train").mkdir(parents=True)
    (tmp_path / "runs" / "03_train" / "best.pt").write_bytes(b"12345")
    (tmp_path / "notebooks").mkdir()
    before = root_conftest.checkout_snapshot(tmp_path)
    (tmp_path / "notebooks" / "scratch.txt").write_text("outside runs/ and data/: not checked")
    assert root_conftest.checkout_changes(before, root_conftest.checkout_snapshot(tmp_path)) == []
    (tmp_path / "runs" / "03_train" / "best.pt").write_bytes(b"123456")
    (tmp_path / "data" / "shapes").mkdir(parents=True)
    assert root_conftest.checkout_changes(before, root_conftest.checkout_snapshot(tmp_path)) == [
        "added: data", "added: data/shapes", "changed: runs/03_train/best.pt"]
    (tmp_path / "runs" / "03_train" / "best.pt").unlink()
    after = root_conftest.checkout_snapshot(tmp_path)
    assert "removed: runs/03_train/best.pt" in root_conftest.checkout_changes(before, after)
