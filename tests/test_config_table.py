"""README.md's configuration table is generated from the declared stack config, and cannot drift from it."""

from __future__ import annotations

from components.config import PatroniSettings, StackKeys
from pgha.ci.config_table import PROJECT_DIR, render_table, with_table


def test_readme_table_is_the_generated_one() -> None:
    readme = (PROJECT_DIR / "README.md").read_text()
    assert with_table(readme, render_table()) == readme, (
        "README.md's configuration table differs from components/config.py: run `make config-table`"
    )


def test_a_changed_description_changes_the_table(monkeypatch) -> None:
    readme = (PROJECT_DIR / "README.md").read_text()
    monkeypatch.setattr(StackKeys.model_fields["replicas"], "description", "read replicas, renamed")
    assert "| `replicas` | `1` | `1` | `2` | 0\u20135 | read replicas, renamed |" in render_table()
    assert with_table(readme, render_table()) != readme


def test_every_key_is_described() -> None:
    for model in (StackKeys, PatroniSettings):
        undescribed = [name for name, field in model.model_fields.items() if not field.description]
        assert not undescribed, f"{model.__name__}: describe {undescribed} (the README's table shows it)"
