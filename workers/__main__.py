"""`python -m workers` (what `tryon-gateway worker` runs): one worker process."""

from workers.main import run

run()
