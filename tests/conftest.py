import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no hub look-ups (they retry for ~26 s offline)
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).resolve().parent))  # `from reference import ...`
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `import costmodel` without installing
