import pytest
import torch


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def _skip_without_pyav(error: ImportError) -> None:
    """Many tests write their videos with PyAV (the ``video`` extra, in CI). Where it is missing (a bare GPU image)
    they skip, saying so, instead of erroring; any other missing module stays an error. (Fixtures that write videos
    skip themselves: session-scoped fixtures run outside this conftest's hooks.)"""
    if error.name == "av":
        pytest.skip("PyAV is not installed (pip install 'divprune-video[video]'): this test writes or reads a video")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    try:
        return (yield)
    except ImportError as error:  # ModuleNotFoundError, or the package's MissingDependencyError naming the module
        _skip_without_pyav(error)
        raise
