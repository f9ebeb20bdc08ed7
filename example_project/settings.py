"""Where the example keeps `.pivot/` and its report folder (`PIVOT_PROJECT_DIR`)."""

import os
from pathlib import Path

PROJECT_DIR = Path(os.environ.get("PIVOT_PROJECT_DIR", Path(__file__).resolve().parent))
REPORT_DIR = PROJECT_DIR / "reports" / "latest"
