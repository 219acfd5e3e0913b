.PHONY: test lint install
install:
	python3 -m pip install .
test:
	bash tools/test.sh
lint:
	python3 -m ruff check fsyncprobe tests bench
	python3 -m mypy
