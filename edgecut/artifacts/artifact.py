"""The artifact directory: written in a partial directory beside the destination and renamed at the end.

An interrupted export leaves no half artifact and never clobbers a good one. What may be replaced is
narrow on purpose, because `--force` deletes: only a directory that `is_replaceable` recognises (by
default an edgecut artifact, one with a readable `edgecut.json`), and never a protected path (the model
or data being read, the working directory, home, `/`) nor a directory above one. The final rename never
replaces anything it did not check: without force it renames onto a path that must still not exist
(atomically where the kernel can), with force it moves the old directory aside, checks what it moved and
puts it back if that is no longer replaceable.

The partial is `.NAME.partial-HOST-PID-XXXXXXXX` (HOST: 8 hex digits of the host name's hash), so its
owner is known from its name alone, even when killed right after creating it. Scratch space
(`.edgecut-staging/`, see `scratch_dir`) lives inside it and is removed just before the rename. A partial
whose process is gone (kill -9, power loss) is removed by the next staging of the same destination.

Layout (Hugging Face / optimum ONNX): model.onnx [+ model.onnx.data], config.json, tokenizer files, plus
edgecut.json (manifest) and golden.npz (inputs + expected logits).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from edgecut.artifacts.manifest import MANIFEST, is_artifact
from edgecut.atomic import rename_noreplace
from edgecut.errors import OutputExistsError, OutputNotWritableError
from edgecut.signals import raise_if_interrupted, signals_deferred

# Scratch space inside a partial, never part of the artifact (training checkpoints, intermediate graphs):
# removing the partial removes everything an export wrote.
STAGING = ".edgecut-staging"


def is_artifact_dir(path: Path) -> bool:
    """An edgecut artifact (a readable edgecut.json with a manifest_version): what export --force replaces."""
    return is_artifact(path)


def check_destination(
    out: Path,
    force: bool,
    protected: Sequence[Path] = (),
    is_replaceable: Callable[[Path], bool] = is_artifact_dir,
) -> None:
    """Fail before any expensive work when `out` cannot become the output.

    Creates missing parent directories and probes that a directory can be made beside `out`, so a
    read-only or impossible location is found before fine-tuning, not after it.

    Args:
        out: the destination directory.
        force: replace an existing `out` (only if `is_replaceable(out)`).
        protected: paths being read (files or directories) that must survive: `out` may be neither one
            of them nor a directory above one. Paths that do not exist (hub ids) are ignored.
        is_replaceable: whether an existing directory is one this command wrote and may replace.

    Raises:
        OutputExistsError: `out` exists and force is off, or it is not something force may replace.
        OutputNotWritableError: no directory can be created beside `out`.
    """
    out = Path(out)
    target = out.resolve()
    if os.path.lexists(target):
        # --force is offered as the fix only where it would work; otherwise the message names what will.
        why = _not_replaceable(target, protected, is_replaceable)
        if why is not None:
            raise OutputExistsError(
                f"{'--force will not replace ' + str(out) if force else f'{out} already exists'}: {why}"
            )
        if not force:
            raise OutputExistsError(f"{out} already exists: choose another output or pass --force to replace it")
    _probe_writable(out, target)


def _not_replaceable(target: Path, protected: Sequence[Path], is_replaceable: Callable[[Path], bool]) -> str | None:
    """Why --force may not replace `target` (what to do instead), or None when it may."""
    if not target.is_dir():
        return "it is not a directory (a file): choose another output (--force replaces only a directory edgecut wrote)"
    guard = _guarded_by(target, protected)
    if guard:
        return f"it is {guard}; choose another output"
    if not is_replaceable(target):
        return (
            f"it is not a directory edgecut wrote (no readable {_what(is_replaceable)}); choose another output, "
            "or remove it yourself"
        )
    return None


def _what(is_replaceable: Callable[[Path], bool]) -> str:
    return getattr(is_replaceable, "describes", MANIFEST)


def _guarded_by(target: Path, protected: Sequence[Path]) -> str | None:
    """What `target` would destroy if replaced: a protected path it is, or a directory above one."""
    guards = [(Path("/"), "the root directory")]
    with contextlib.suppress(RuntimeError, KeyError):  # no HOME and no passwd entry
        guards.append((Path.home(), "your home directory"))
    with contextlib.suppress(OSError):  # the working directory was deleted
        guards.append((Path.cwd(), "the working directory"))
    guards += [(Path(p), f"the input {p}") for p in protected if os.path.lexists(p)]
    for path, what in guards:
        resolved = path.resolve()
        if target == resolved:
            return what
        if target in resolved.parents:
            return f"a directory above {what}"
    return None


def _probe_writable(out: Path, target: Path) -> None:
    """Create (then remove) a directory beside `target`: the same operation the export ends with."""
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        probe = _make_dir(parent, f".{target.name}.probe-{os.getpid()}-")
        probe.rmdir()
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise OutputNotWritableError(
            f"cannot write {out} ({reason}: {e.filename or parent}): choose an output in a directory you can write"
        ) from e


def _make_dir(parent: Path, prefix: str) -> Path:
    """A new directory `prefix` + 8 hex digits, created with the umask's mode (mkdtemp would make it 0700)."""
    for _ in range(100):
        path = parent / f"{prefix}{secrets.token_hex(4)}"
        try:
            path.mkdir(mode=0o777)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(errno.EEXIST, "no free name", str(parent / prefix))


def file_starts_with(name: str, prefix: str) -> Callable[[Path], bool]:
    """A replaceable-test: the directory holds `name` whose text starts with `prefix` (a 'written by' line)."""

    def test(path: Path) -> bool:
        try:
            with (Path(path) / name).open(encoding="utf-8") as f:
                return f.read(len(prefix)) == prefix
        except (OSError, UnicodeDecodeError):
            return False

    test.describes = f"{name} written by edgecut"  # type: ignore[attr-defined]
    return test


def scratch_dir(partial: Path) -> Path:
    """Scratch space inside a partial (checkpoints, intermediate graphs): never part of the artifact.

    It goes with the partial on failure and is removed just before the final rename on success.
    """
    path = Path(partial) / STAGING
    path.mkdir(exist_ok=True)
    return path


@contextlib.contextmanager
def staging(
    out: Path,
    force: bool,
    protected: Sequence[Path] = (),
    is_replaceable: Callable[[Path], bool] = is_artifact_dir,
) -> Iterator[Path]:
    """Yield an empty partial directory; on success it becomes `out`, on any failure it disappears.

    Raises:
        OutputExistsError: see `check_destination`; also when, at the end, `out` was taken meanwhile
            (without force) or is no longer replaceable (with force). The partial is removed.
        OutputNotWritableError: see `check_destination`.
    """
    out = Path(out)
    check_destination(out, force, protected, is_replaceable)
    target = out.resolve()
    remove_stale_partials(target)
    tmp = _make_dir(target.parent, f".{target.name}.partial-{_owner()}-")
    try:
        yield tmp
        shutil.rmtree(tmp / STAGING, ignore_errors=True)
        with signals_deferred():
            raise_if_interrupted()  # a stop whose exception was swallowed still publishes nothing
            _replace(tmp, target, out, force, is_replaceable)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _replace(tmp: Path, target: Path, out: Path, force: bool, is_replaceable: Callable[[Path], bool]) -> None:
    """Rename `tmp` to `target`, replacing only what was checked."""
    old = None
    if force and os.path.lexists(target):
        # Move whatever is there now aside, then check what was moved: no window between check and use.
        old = target.with_name(f".{target.name}.old-{_owner()}-{secrets.token_hex(4)}")
        rename_noreplace(target, old)
        if old.is_symlink() or not old.is_dir() or not is_replaceable(old):
            _put_back(old, target, out)
            raise OutputExistsError(
                f"--force will not replace {out}: it changed during the export and is not a directory edgecut "
                f"wrote; choose another output"
            )
    try:
        rename_noreplace(tmp, target)
    except FileExistsError:
        kept = f"; the previous one is kept at {_keep(old, target)}" if old is not None else ""
        raise OutputExistsError(
            f"{out} was created by something else during the export: nothing replaced it{kept}; "
            f"choose another output or remove it and run again"
        ) from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _put_back(old: Path, target: Path, out: Path) -> None:
    try:
        rename_noreplace(old, target)
    except FileExistsError:
        raise OutputExistsError(
            f"{out} changed twice during the export: what was there is kept at {_keep(old, target)}; "
            f"choose another output"
        ) from None


def _keep(old: Path, target: Path) -> Path:
    """Give a moved-aside directory that cannot go back a visible name that stale cleanup never removes."""
    kept = target.with_name(f"{target.name}.kept-{secrets.token_hex(4)}")
    try:
        rename_noreplace(old, kept)
    except OSError:
        return old
    return kept


# --- stale partials -------------------------------------------------------------------------------------


def host_tag() -> str:
    """8 hex digits naming this host, part of a partial's name: a pid means nothing on another machine."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _owner() -> str:
    return f"{host_tag()}-{os.getpid()}"


def remove_stale_partials(out: Path) -> list[Path]:
    """Remove what a killed staging of `out` left beside it; return what was removed or put back.

    Only `.NAME.partial-HOST-PID-XXXXXXXX` and `.NAME.old-HOST-PID-XXXXXXXX` directories of this very
    destination, made on this host by a process that is gone. A partial is removed; an old directory
    (the artifact a --force run had moved aside when it was killed) is put back if `out` is missing,
    else removed.
    """
    target = Path(out).resolve()
    name = re.escape(target.name)
    pattern = re.compile(rf"\.{name}\.(partial|old)-([0-9a-f]{{8}})-(\d+)-[0-9a-f]{{8}}")
    try:
        entries = sorted(target.parent.iterdir())
    except OSError:
        return []
    done = []
    for path in entries:
        m = pattern.fullmatch(path.name)
        if not m or m.group(2) != host_tag() or not _gone(int(m.group(3))) or path.is_symlink() or not path.is_dir():
            continue
        if m.group(1) == "old" and not os.path.lexists(target):
            with contextlib.suppress(OSError):
                rename_noreplace(path, target)
                done.append(path)
            continue
        shutil.rmtree(path, ignore_errors=True)
        done.append(path)
    return done


def _gone(pid: int) -> bool:
    """Whether no process `pid` exists (one of another user counts as alive)."""
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return False
    return False


def save_tokenizer(tokenizer, directory: Path) -> None:
    """Save tokenizer files that transformers 4.x (optimum's) loads too.

    transformers 5 records `tokenizer_class: "TokenizersBackend"`, a class 4.x does not have; the same
    tokenizer.json loads in both as the plain `PreTrainedTokenizerFast`.
    """
    tokenizer.save_pretrained(directory)
    path = directory / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    if config.get("tokenizer_class") == "TokenizersBackend":
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
