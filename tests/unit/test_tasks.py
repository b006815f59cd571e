import io
import json
import os
from pathlib import Path

import pytest
from PIL import Image

from computeinfra.errors import RequestError, TaskError
from computeinfra.tasks import TaskContext, TaskRegistry, load_registry
from computeinfra.tasks.context import InputRoots, discard_job_files
from computeinfra.tasks.journal import OutputJournal, journal_name, journal_names
from computeinfra.tasks.sleep import sleep as sleep_task


@pytest.fixture(scope="module")
def registry() -> TaskRegistry:
    return load_registry()


def make_ctx(tmp_path: Path) -> TaskContext:
    root = tmp_path / "results"
    (root / "out").mkdir(parents=True)
    return TaskContext(key="k", attempt=1, results_root=root, result_dir=root / "out")


def make_image(path: Path, size: tuple[int, int] = (320, 240)) -> Path:
    image = Image.effect_mandelbrot(size, (-2, -1.5, 1, 1.5), 100).convert("RGB")
    image.save(path, format="PNG")
    return path


def test_builtins_are_registered(registry: TaskRegistry) -> None:
    assert {"sleep", "word-count", "image-compression"} <= {t.name for t in registry}


def test_unknown_task_lists_the_known_ones(registry: TaskRegistry) -> None:
    with pytest.raises(RequestError, match="unknown task 'nope'; known tasks: .*sleep"):
        registry.get("nope")


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ({"seconds": "soon"}, "payload.seconds"),
        ({"seconds": -1}, "payload.seconds: Input should be greater than or equal to 0"),
        ({}, "payload.seconds: Field required"),
        ({"seconds": 1, "extra": 1}, "payload.extra: Extra inputs are not permitted"),
    ],
)
def test_payload_errors_name_the_field(registry: TaskRegistry, payload: dict, words: str) -> None:
    with pytest.raises(RequestError) as caught:
        registry.get("sleep").validate(payload)
    assert words in str(caught.value)


def test_image_inputs_are_confined_when_validated_with_roots(
    registry: TaskRegistry, tmp_path: Path
) -> None:
    task = registry.get("image-compression")
    inside = tmp_path / "in"
    inside.mkdir()
    make_image(inside / "a.png")
    roots = InputRoots((inside,))
    ok = task.validate({"images": ["a.png"], "quality": 50}, roots)
    assert ok.images == [str(inside / "a.png")]
    with pytest.raises(RequestError, match="payload.images.0: .*does not exist"):
        task.validate({"images": ["missing.png"], "quality": 50}, roots)
    with pytest.raises(RequestError, match="outside the input roots"):
        task.validate({"images": ["/etc/hostname"], "quality": 50}, roots)
    with pytest.raises(RequestError, match="payload.quality"):
        task.validate({"images": ["a.png"], "quality": 96}, roots)


def test_image_compression_writes_smaller_images_at_lower_quality(
    registry: TaskRegistry, tmp_path: Path
) -> None:
    task = registry.get("image-compression")
    source = make_image(tmp_path / "photo.png")
    sizes = {}
    for quality in (20, 90):
        ctx = make_ctx(tmp_path / f"q{quality}")
        payload = task.validate({"images": [str(source)], "quality": quality})
        result = task(payload, ctx)
        (output,) = ctx.outputs
        written = ctx.results_root / output.path
        assert written.name == "photo.jpg"
        with Image.open(written) as image:
            assert image.format == "JPEG"
            assert image.size == (320, 240)
        assert output.model_extra["original_bytes"] == source.stat().st_size
        assert output.bytes == written.stat().st_size == result["compressed_bytes"]
        sizes[quality] = output.bytes
    assert sizes[20] < sizes[90]


def test_image_compression_webp_and_name_clashes(registry: TaskRegistry, tmp_path: Path) -> None:
    task = registry.get("image-compression")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = make_image(tmp_path / "a" / "x.png")
    second = make_image(tmp_path / "b" / "x.png")
    ctx = make_ctx(tmp_path)
    task(task.validate({"images": [str(first), str(second)], "quality": 40, "format": "webp"}), ctx)
    assert [Path(o.path).name for o in ctx.outputs] == ["x.webp", "x-1.webp"]
    data = (ctx.results_root / ctx.outputs[0].path).read_bytes()
    assert Image.open(io.BytesIO(data)).format == "WEBP"


def test_word_count_text_and_files(registry: TaskRegistry, tmp_path: Path) -> None:
    task = registry.get("word-count")
    text_file = tmp_path / "t.txt"
    text_file.write_text("the cat\nthe dog's bone\n")
    ctx = make_ctx(tmp_path)
    summary = task(task.validate({"files": [str(text_file)]}), ctx)
    assert summary["total_words"] == 5
    counts = json.loads((ctx.results_root / ctx.outputs[0].path).read_text())["counts"]
    assert counts == {"the": 2, "cat": 1, "dog's": 1, "bone": 1}
    with pytest.raises(RequestError, match="exactly one of 'files' or 'text'"):
        task.validate({})
    with pytest.raises(RequestError, match="exactly one"):
        task.validate({"text": "a", "files": [str(text_file)]})


def test_failed_output_leaves_no_file_and_no_temp(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    with pytest.raises(RuntimeError), ctx.open_output("half.bin") as handle:
        handle.write(b"partial")
        raise RuntimeError("crash mid-write")
    assert list(ctx.result_dir.iterdir()) == []
    assert ctx.outputs == []


def test_rewriting_an_output_replaces_it_atomically(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    ctx.write_bytes("a.txt", b"one")
    ctx.write_bytes("a.txt", b"two!")
    assert (ctx.result_dir / "a.txt").read_bytes() == b"two!"
    assert [(o.path, o.bytes) for o in ctx.outputs] == [("out/a.txt", 4)]
    assert sorted(p.name for p in ctx.result_dir.iterdir()) == ["a.txt"]


def test_bad_task_module_is_a_readable_error() -> None:
    with pytest.raises(TaskError, match="cannot import task module 'no_such_module'"):
        load_registry(["no_such_module"])


def test_two_tasks_with_one_name_conflict() -> None:
    clone = type(sleep_task)(
        name="sleep", payload_model=sleep_task.payload_model, fn=lambda p, c: 1
    )
    with pytest.raises(TaskError, match="two different tasks"):
        TaskRegistry([sleep_task, clone])


def test_a_retry_removes_what_a_killed_attempt_left(tmp_path: Path) -> None:
    first = make_ctx(tmp_path)
    writing = first.open_output("big.bin")
    handle = writing.__enter__()
    handle.write(b"half")  # the attempt is killed here: no rename, no cleanup
    leftovers = [p for p in first.result_dir.iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".big.bin.")
    other_job = TaskContext(
        key="other", attempt=1, results_root=first.results_root, result_dir=first.result_dir
    )
    with other_job.open_output("x.bin") as other_handle:
        other_handle.write(b"x")
    retry = TaskContext(
        key="k", attempt=2, results_root=first.results_root, result_dir=first.result_dir
    )
    assert retry.left_behind()
    assert retry.discard_stale_temporaries() == 1
    retry.write_bytes("big.bin", b"whole")
    assert sorted(p.name for p in retry.result_dir.iterdir()) == ["big.bin", "x.bin"]


def test_a_job_read_again_by_another_block_finds_what_its_killed_attempt_left(
    tmp_path: Path,
) -> None:
    # Its block died with it, so the new owner runs it as attempt 1 again.
    first = make_ctx(tmp_path)
    writing = first.open_output("big.bin")
    writing.__enter__().write(b"half")  # killed here: no rename, no cleanup
    again = TaskContext(
        key="k", attempt=1, results_root=first.results_root, result_dir=first.result_dir
    )
    assert again.left_behind()
    assert again.discard_stale_temporaries() == 1
    assert not again.left_behind()
    finished = TaskContext(
        key="done", attempt=1, results_root=first.results_root, result_dir=first.result_dir
    )
    finished.write_bytes("d.bin", b"d")
    assert not TaskContext(
        key="done", attempt=1, results_root=first.results_root, result_dir=first.result_dir
    ).left_behind()


def test_time_limits_none_means_no_limit_and_max_bounds_what_a_request_asks() -> None:
    from pydantic import BaseModel

    from computeinfra.tasks.registry import Task

    class Empty(BaseModel):
        pass

    def run(payload: Empty, ctx: TaskContext) -> None:
        return None

    assert Task("open", Empty, run, time_limit=None).longest_time_limit is None
    assert Task("t", Empty, run, time_limit=60, max_time_limit=7200).longest_time_limit == 7200
    assert Task("t", Empty, run, time_limit=60).longest_time_limit == 60
    with pytest.raises(TaskError, match="max_time_limit is below time_limit"):
        Task("t", Empty, run, time_limit=60, max_time_limit=30)
    with pytest.raises(TaskError, match="time_limit must be in"):
        Task("t", Empty, run, time_limit=8 * 24 * 3600)


def test_what_a_killed_attempt_wrote_is_found_and_removed_and_nothing_else(
    tmp_path: Path,
) -> None:
    """A cancelled job's worker is killed mid-run: its journal lists what the job began to
    write, so its finished outputs and its temporaries go, and another job's files stay."""
    journal = OutputJournal(tmp_path / "journals" / journal_name(os.getpid()))
    root = tmp_path / "results"
    folder = (root / "out").resolve()
    ctx = TaskContext(key="k", attempt=1, results_root=root, result_dir=folder, journal=journal)
    ctx.write_bytes("done/1.jpg", b"one")
    writing = ctx.open_output("done/2.jpg")
    writing.__enter__().write(b"ha")  # killed here: no rename
    neighbour = TaskContext(
        key="other", attempt=1, results_root=root, result_dir=folder, journal=journal
    )
    neighbour.write_bytes("done/3.jpg", b"three")
    names = journal_names([journal.path], "k")
    assert names == ["done/1.jpg", "done/2.jpg"]
    assert discard_job_files(folder, "k", names) == 2  # 1.jpg and 2.jpg's temporary
    left = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))
    assert left == ["done", "done/3.jpg"]
    journal.begin()  # short: kept
    assert journal_names([journal.path], "other") == ["done/3.jpg"]


def test_a_finished_jobs_outputs_are_removed_by_name_and_names_leaving_its_folder_skipped(
    tmp_path: Path,
) -> None:
    ctx = make_ctx(tmp_path)
    ctx.write_bytes("a.txt", b"a")
    outside = ctx.results_root / "keep.txt"
    outside.write_text("not the job's")
    assert discard_job_files(ctx.result_dir, ctx.key, ["a.txt", "../keep.txt"]) == 1
    assert outside.exists() and not (ctx.result_dir / "a.txt").exists()


def test_image_compression_reuses_pillow_memory_across_images(tmp_path: Path) -> None:
    """Pillow keeps no freed block by default, so every image's memory was mapped afresh:
    about 2,100 page faults for a 1024x768 image, a fifth to a quarter of its time
    (docs/performance.md, change 14). The task keeps a few, and the next image reuses them."""
    from computeinfra.tasks.image_compression import _encode

    source = make_image(tmp_path / "big.png", (1024, 768))
    Image.core.reset_stats()
    for _ in range(5):
        _encode(source, 50, "jpeg")
    stats = Image.core.get_stats()
    assert Image.core.get_blocks_max() >= 4
    assert stats["reused_blocks"] >= 4, stats
