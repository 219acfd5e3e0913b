"""`python -m fsyncprobe` runs the CLI."""

from fsyncprobe.cli import main

if __name__ == "__main__":
    main()
