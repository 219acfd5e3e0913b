.PHONY: test lint install deb
install:
	python3 -m pip install .
test:
	bash tools/test.sh
lint:
	python3 -m ruff check fsyncprobe tests bench
	python3 -m mypy

# The Debian package, dist/fsyncprobe_<version>_all.deb (issue 15; docs/install.md). Built from a
# copy of the tree in dist/.deb-build (DIST=DIR puts both elsewhere), so dpkg-buildpackage writes nothing beside the checkout.
# Build dependencies: `apt-get build-dep -y ./`. Debian's own python3 builds it (not a
# virtual environment's or pyenv's first on PATH).
DIST ?= dist
DEB_BUILD := $(DIST)/.deb-build
deb:
	rm -rf $(DEB_BUILD) && mkdir -p $(DEB_BUILD)/src
	tar -cf - --exclude=./.git --exclude=./dist --exclude=./build --exclude=./$(DIST) --exclude='*.egg-info' \
	  --exclude=__pycache__ --exclude=./debian/generated --exclude=./debian/fsyncprobe . | tar -C $(DEB_BUILD)/src -xf -
	cd $(DEB_BUILD)/src && env PATH=/usr/sbin:/usr/bin:/sbin:/bin dpkg-buildpackage -us -uc -b
	mv $(DEB_BUILD)/fsyncprobe_*_all.deb $(DIST)/
	rm -rf $(DEB_BUILD)
	@ls $(DIST)/fsyncprobe_*_all.deb
