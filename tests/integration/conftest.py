import pytest

from tests.conftest import StackHandle


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="module")
def module_stack(stack: StackHandle, request: pytest.FixtureRequest) -> StackHandle:
    """The session's services with topics, a consumer group, a model registry and a Redis database of this
    module's own (see :meth:`StackHandle.isolated`)."""
    return stack.isolated(request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_").replace("_", "")[:12])
