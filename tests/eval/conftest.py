"""Benchmark fixtures in the released layouts, written once per session (read-only for the tests: tests that damage
a dataset build their own)."""

import pytest

from divprune_video.testing import write_mlvu_fixture, write_mvbench_fixture, write_replay_file, write_videomme_fixture


def scripted_response(index: int, gold: str, letters: str = "ABCD") -> str:
    """A deterministic mix of answer styles: right, wrong, verbose, empty."""
    wrong = letters[(letters.index(gold) + 1) % len(letters)] if gold in letters else letters[0]
    styles = [gold, f"({wrong}) something", f"The answer is {gold}.", "", f"{gold}. because", "no idea"]
    return styles[index % len(styles)]


@pytest.fixture(scope="session")
def mvbench_data(tmp_path_factory):
    pytest.importorskip("av")  # the fixture writes its videos with PyAV
    root = tmp_path_factory.mktemp("mvbench")
    return root, write_mvbench_fixture(root)


@pytest.fixture(scope="session")
def videomme_data(tmp_path_factory):
    pytest.importorskip("av")  # the fixture writes its videos with PyAV
    root = tmp_path_factory.mktemp("videomme")
    return root, write_videomme_fixture(root, subtitled_videos=4)


@pytest.fixture(scope="session")
def mlvu_data(tmp_path_factory):
    pytest.importorskip("av")  # the fixture writes its videos with PyAV
    root = tmp_path_factory.mktemp("mlvu")
    return root, write_mlvu_fixture(root)


@pytest.fixture(scope="session")
def replay_files(tmp_path_factory, mvbench_data, videomme_data, mlvu_data):
    """name -> (data root, questions, replay file, responses) for each benchmark."""
    folder = tmp_path_factory.mktemp("replay")
    out = {}
    for name, (root, questions) in (("mvbench", mvbench_data), ("videomme", videomme_data), ("mlvu", mlvu_data)):
        responses = [scripted_response(i, q.gold, "ABCDE"[: max(4, len(q.options))]) for i, q in enumerate(questions)]
        path = write_replay_file(
            folder / f"{name}.jsonl",
            [
                {"video": q.video, "question": q.question, "task": q.task, "response": r}
                for q, r in zip(questions, responses)
            ],
        )
        out[name] = (root, questions, path, responses)
    return out
