from pathlib import Path

import pytest

from computeinfra.errors import PathError
from computeinfra.paths import resolve_input, resolve_result_dir, safe_output_path


@pytest.mark.parametrize("good", ["demo", "a/b/c", "./x", "a/../b"])
def test_result_dirs_inside_the_root(tmp_path: Path, good: str) -> None:
    resolved = resolve_result_dir(tmp_path, good)
    assert resolved.is_relative_to(tmp_path.resolve())
    assert resolved != tmp_path.resolve()


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        ("/etc", "absolute"),
        ("..", "leaves the results root"),
        ("a/../../b", "leaves the results root"),
        (".", "leaves the results root"),
        ("", "empty"),
        ("a\x00b", "control characters"),
        ("x" * 5000, "limit"),
    ],
)
def test_result_dirs_that_escape_are_rejected(tmp_path: Path, bad: str, words: str) -> None:
    with pytest.raises(PathError, match=words):
        resolve_result_dir(tmp_path, bad)


def test_symlink_out_of_the_results_root_is_rejected(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(tmp_path)
    with pytest.raises(PathError):
        resolve_result_dir(root, "link/..")
    with pytest.raises(PathError):
        resolve_result_dir(root, "link")


def test_inputs_resolve_relative_and_absolute(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    image = tmp_path / "in" / "a.png"
    image.write_bytes(b"x")
    assert resolve_input([tmp_path / "in"], "a.png") == image
    assert resolve_input([tmp_path / "in"], str(image)) == image


def test_input_outside_the_roots_is_rejected_with_advice(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    outside = tmp_path / "secret.txt"
    outside.write_text("s")
    with pytest.raises(PathError, match="outside the input roots.*COMPUTEINFRA_INPUT_ROOTS"):
        resolve_input([tmp_path / "in"], str(outside))
    with pytest.raises(PathError, match="outside"):
        resolve_input([tmp_path / "in"], "../secret.txt")


def test_input_symlink_pointing_outside_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "secret.txt").write_text("s")
    (tmp_path / "in" / "link.txt").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(PathError, match="outside"):
        resolve_input([tmp_path / "in"], "link.txt")


def test_missing_input_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(PathError, match="does not exist"):
        resolve_input([tmp_path], "nope.png")


def test_an_input_in_a_symlink_loop_is_a_path_error_not_a_crash(tmp_path: Path) -> None:
    """A request's own mistake, answered as one: ``Path.resolve`` raised ``RuntimeError``
    on a loop, which no validator turned into the job's answer."""
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(PathError, match="symlink loop"):
        resolve_input([tmp_path], "a")


def test_output_names_stay_in_the_result_dir(tmp_path: Path) -> None:
    assert safe_output_path(tmp_path, "a.jpg") == tmp_path.resolve() / "a.jpg"
    with pytest.raises(PathError):
        safe_output_path(tmp_path, "../a.jpg")
    with pytest.raises(PathError):
        safe_output_path(tmp_path, "/tmp/a.jpg")


def test_an_output_name_through_a_symlink_loop_cannot_leave_the_result_dir(
    tmp_path: Path,
) -> None:
    """``os.path.realpath`` (and ``Path.resolve``, which it replaced) leaves a symlink loop
    unresolved and, up to Python 3.12, strips the ``..`` after it as text, so
    ``loop/../out/x`` came out as ``<result_dir>/out/x``, inside by its text, while ``out``
    points elsewhere: a job wrote outside its folder (found by a review of issue #15's
    change 21; on ``03e2265`` too)."""
    result_dir, outside = tmp_path / "r", tmp_path / "outside"
    result_dir.mkdir()
    outside.mkdir()
    (result_dir / "loop").symlink_to(result_dir / "loop")
    (result_dir / "out").symlink_to(outside)
    for name in ("loop/../out/x.jpg", "loop/x.jpg", "loop"):
        # "leaves" on Python 3.13, whose realpath resolves past a loop.
        with pytest.raises(PathError, match="symlink loop|leaves"):
            safe_output_path(result_dir, name)
    # A link that resolves inside is followed as before.
    (result_dir / "sub").mkdir()
    (result_dir / "here").symlink_to(result_dir / "sub")
    assert safe_output_path(result_dir, "here/x.jpg") == result_dir.resolve() / "sub" / "x.jpg"


def _loop_beside_a_way_out(folder: Path, outside: Path) -> None:
    """``folder/loop`` links to itself, ``folder/out`` to ``outside``."""
    (folder / "loop").symlink_to(folder / "loop")
    (folder / "out").symlink_to(outside)


def test_a_result_dir_through_a_symlink_loop_is_rejected(tmp_path: Path) -> None:
    """The same loop in a request's ``result_dir``: ``loop/../out`` resolved to
    ``<root>/out`` and passed, and the job's outputs went where ``out`` points (found by a
    review of issue #15's change 21; on ``0452639`` too)."""
    root, outside = tmp_path / "results", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    _loop_beside_a_way_out(root, outside)
    for result_dir in ("loop/../out", "loop/../out/sub", "loop"):
        with pytest.raises(PathError, match="symlink loop|leaves"):
            resolve_result_dir(root, result_dir)


def test_an_input_through_a_symlink_loop_is_outside_the_roots(tmp_path: Path) -> None:
    """And in an input path: ``loop/../out/secret.txt`` was read from wherever ``out``
    points (on ``0452639`` too)."""
    roots, outside = tmp_path / "in", tmp_path / "outside"
    roots.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("s")
    _loop_beside_a_way_out(roots, outside)
    with pytest.raises(PathError, match="symlink loop|outside the input roots"):
        resolve_input([roots], "loop/../out/secret.txt")
