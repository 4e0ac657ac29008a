# The two commands of the README: `make demo` (the main job) and `make test`.
# Both set up everything first (scripts/bootstrap: uv, .venv from requirements.lock; cached).
.PHONY: setup demo sample test lock

setup:
	@scripts/bootstrap

demo: setup
	.venv/bin/ember demo

sample: setup
	.venv/bin/ember run-sample --output out/sample

test: setup
	.venv/bin/python -m pytest -q --timeout=600

# Re-pin after changing dependencies in pyproject.toml (uv from PATH, else the one
# scripts/bootstrap installed).
lock: setup
	UV_CACHE_DIR=.cache/uv $$(command -v uv || echo .cache/bootstrap/bin/uv) pip compile \
	  pyproject.toml --all-extras --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_35 -o requirements.lock
