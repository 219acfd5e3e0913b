"""What holds a path: mount, block-device stack, physical leaves, and their class."""
