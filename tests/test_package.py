"""paperwire as users get it: a wheel installed into a fresh venv, far from the checkout.

The wheel once shipped no templates (they were looked up beside src/), so every
`paperwire digest` of a `pip install .` crashed, and `paperwire demo` needed seeds/ and
examples/ in the current folder. Here the wheel is built from a copy of the checkout
(`pip wheel --no-deps`, as CI does), installed with its dependencies from the index into a
new venv, and run in an empty folder with no PYTHONPATH: the demo, a digest, and `serve`'s
pages and static files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from .ports import free_port

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ("templates", "seeds", "examples")  # top-level folders that ship inside the package
# What the build needs of the checkout; the rest (and any stale build/) stays behind.
NOT_BUILT = shutil.ignore_patterns(".git", ".venv", "out", "build", "dist", "*.egg-info", "__pycache__",
                                   ".pytest_cache", ".hypothesis", "tests", "bench")

pytestmark = pytest.mark.slow


def _clean_env() -> dict[str, str]:
    """The environment without anything that would import the checkout or change settings."""
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PAPERWIRE_")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def _run(*command: str | Path, cwd: Path, timeout: float = 300, **env: str) -> str:
    done = subprocess.run([str(part) for part in command], cwd=cwd, env=_clean_env() | env, timeout=timeout,
                          capture_output=True, text=True)
    assert done.returncode == 0, f"{command} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=NOT_BUILT)
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", work / "dist", source, cwd=work)
    (built,) = (work / "dist").glob("paperwire-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory) -> Path:
    """A new venv with the wheel and its dependencies from the index; nothing of the checkout."""
    where = tmp_path_factory.mktemp("venv") / "venv"
    _run(sys.executable, "-m", "venv", where, cwd=where.parent)
    _run(where / "bin" / "python", "-m", "pip", "install", "--quiet", wheel, cwd=where.parent)
    return where


@pytest.fixture(scope="module")
def demo_folder(venv: Path, tmp_path_factory) -> tuple[Path, str]:
    """An empty folder in which the installed `paperwire demo` ran; its output."""
    folder = tmp_path_factory.mktemp("empty")
    return folder, _run(venv / "bin" / "paperwire", "demo", cwd=folder)


def test_the_wheel_holds_every_template_seed_and_example(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"paperwire/{path.relative_to(ROOT).as_posix()}"
                for folder in SHIPPED for path in (ROOT / folder).rglob("*")
                if path.is_file() and not path.name.startswith(".")}  # .gitkeep stays behind
    assert {"paperwire/templates/email.mjml.j2", "paperwire/templates/web/static/web.css",
            "paperwire/seeds/000_f1d956a196093e66.txt", "paperwire/examples/readers.json"} <= expected
    assert expected - names == set()


def test_the_venv_imports_paperwire_from_the_wheel(venv):
    where = _run(venv / "bin" / "python", "-c",
                 "import paperwire, paperwire.config as c; print(paperwire.__file__); print(c.Settings().templates_dir)",
                 cwd=venv.parent)
    module, templates = map(Path, where.split("\n")[:2])
    assert module.is_relative_to(venv) and templates.is_relative_to(module.parent)
    assert (templates / "email.mjml.j2").is_file() and (templates / "web" / "static" / "web.css").is_file()


def test_demo_runs_in_an_empty_folder(demo_folder):
    folder, output = demo_folder
    assert "4 demo readers, 4 digest(s)" in output and "Delivered 4 digest(s) to out/outbox/" in output
    assert len(list((folder / "out" / "outbox").glob("*.eml"))) == 4
    assert len(list((folder / "out" / "digests").glob("*/*.html"))) == 4
    assert (folder / "out" / "index.html").is_file() and (folder / "out" / "feeds" / "feeds.opml").is_file()
    assert sorted(p.name for p in folder.iterdir()) == ["out"]  # it writes under out/ alone


def test_digest_of_the_installed_package(demo_folder, venv):
    """After the demo sent every reader their digest, nothing is new for them (``digest`` lists
    none); ``preview`` still renders a reader's digest with the installed templates."""
    folder, _ = demo_folder
    assert _run(venv / "bin" / "paperwire", "digest", "--json", cwd=folder).strip() == "[]"
    written = Path(_run(venv / "bin" / "paperwire", "preview", "ada@example.org", cwd=folder).strip())
    page = (written if written.is_absolute() else folder / written).read_text()
    assert "Hi Ada" in page and "Unsubscribe</a>" in page


def test_serve_of_the_installed_package_has_its_pages_and_static_files(demo_folder, venv):
    folder, _ = demo_folder
    port = free_port()
    server = subprocess.Popen([venv / "bin" / "paperwire", "serve", "--dev", "--port", str(port)], cwd=folder,
                              env=_clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 60
    try:
        while True:
            try:
                home = httpx.get(base + "/", timeout=5)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, server.stderr.read().decode()
                time.sleep(0.2)
        assert home.status_code == 200 and 'name="csrf_token"' in home.text
        for name, media_type in (("web.css", "text/css"), ("web.js", "text/javascript"), ("favicon.svg", "image/svg")):
            static = httpx.get(f"{base}/static/{name}", timeout=5)
            assert static.status_code == 200 and static.headers["content-type"].startswith(media_type), name
            assert static.content == (ROOT / "templates" / "web" / "static" / name).read_bytes()
    finally:
        server.terminate()
        server.wait(timeout=30)
