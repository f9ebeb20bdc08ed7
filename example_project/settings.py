"""Where the example keeps `.pivot/` and its report folder (`PIVOT_PROJECT_DIR`)."""

import os
from pathlib import Path

PROJECT_DIR = Path(os.environ.get("PIVOT_PROJECT_DIR", Path(__file__).resolve().parent))
REPORT_DIR = PROJECT_DIR / "reports" / "latest"


def has_remote() -> bool:
    """True when the project's config names a remote (read without creating `.pivot/`)."""
    from pivot_store.config import load_config

    try:
        return bool(load_config(PROJECT_DIR / ".pivot" / "config.yaml").remotes)
    except Exception:  # a broken config is reported by the IO manager, not at import
        return False
