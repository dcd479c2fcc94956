"""Keep the README true: every setting is documented, and it leads with the two commands."""

from pathlib import Path

from churnstream.settings import Settings

README = (Path(__file__).parents[2] / "README.md").read_text()


def test_every_setting_is_in_the_readme_table() -> None:
    for name in Settings.model_fields:
        assert f"`CHURNSTREAM_{name.upper()}`" in README, name


def test_readme_leads_with_the_two_commands() -> None:
    head = README[:1500]
    assert "make demo" in head and "make test" in head
